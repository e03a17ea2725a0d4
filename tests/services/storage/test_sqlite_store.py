"""SQLite-only behaviour of SqliteStateStore: durability across reopen, WAL, precondition atomicity."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from aos_core.errors import ConflictError
from services.storage import SqliteStateStore


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "state.db"
    store = SqliteStateStore(path)
    etag = await store.put("agents/ceo", {"purpose": "Strategic oversight"})
    await store.upload("container", "report.txt", "hello")
    await store.close()

    reopened = SqliteStateStore(str(path))
    doc = await reopened.get("agents/ceo")
    assert doc is not None and doc.value == {"purpose": "Strategic oversight"} and doc.etag == etag
    assert await reopened.download("container", "report.txt") == b"hello"
    with pytest.raises(ConflictError):  # a reopened store never re-issues an ETag the old one handed out
        await reopened.put("agents/ceo", {}, if_match="stale")
    new_etag = await reopened.put("agents/ceo", {"v": 2}, if_match=etag)
    assert new_etag != etag
    await reopened.close()


async def test_store_reopens_on_use_after_close(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    await store.put("k", 1)
    await store.close()
    doc = await store.get("k")
    assert doc is not None and doc.value == 1
    await store.close()


async def test_wal_mode_and_schema(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db", synchronous="FULL")
    await store.put("k", 1)
    assert await store.db.read(lambda conn: conn.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert await store.db.read(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]) == 2  # FULL
    await store.close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
        columns = [row[1] for row in conn.execute("PRAGMA table_info(documents)")]
        assert columns == ["key", "value", "etag", "updated"]
        row = conn.execute("SELECT key, value FROM documents").fetchone()
        assert row == ("k", "1")
    conn.close()


async def test_prefix_listing_uses_the_primary_key_index(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    plan = await store.db.read(
        lambda conn: conn.execute(
            "EXPLAIN QUERY PLAN SELECT key FROM documents WHERE key >= ? AND key < ? ORDER BY key", ("a/", "a0")
        ).fetchall()
    )
    assert any("USING" in row[-1] and "INDEX" in row[-1] for row in plan), plan
    await store.close()


async def test_group_committed_writes_fail_alone(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    await store.put("taken", 0)

    async def create(key: str) -> str:
        try:
            await store.put(key, 1, if_none_match=True)
            return "ok"
        except ConflictError:
            return "conflict"

    results = await asyncio.gather(*(create("taken" if i % 3 == 0 else f"new/{i}") for i in range(60)))
    assert results.count("conflict") == 20
    assert await store.count("new/") == 40
    await store.close()
