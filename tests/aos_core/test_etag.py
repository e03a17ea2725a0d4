"""The one read-modify-write-with-retry: concurrent writers lose no update, and a hopeless race ends in a 409."""

from __future__ import annotations

import asyncio

import pytest

from aos_core.errors import ConflictError
from aos_core.etag import retry_on_conflict, update_document
from services.storage import InMemoryStateStore, SqliteStateStore


class _Yielding(InMemoryStateStore):
    """Gives the loop away between a read and the write that follows it, so concurrent updates really race."""

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        doc = await super().get(key)
        await asyncio.sleep(0)
        return doc


def _add_one(value):  # type: ignore[no-untyped-def]
    value = value or {"n": 0}
    value["n"] += 1
    return value, value["n"]


async def test_concurrent_updates_all_land() -> None:
    store = _Yielding()
    answers = await asyncio.gather(*(update_document(store, "counter", _add_one, attempts=100) for _ in range(50)))
    assert (await store.get("counter")).value == {"n": 50}  # type: ignore[union-attr]
    assert sorted(answers) == list(range(1, 51))  # each caller saw the value its own write made


async def test_concurrent_updates_all_land_on_sqlite(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SqliteStateStore(tmp_path / "state.db")
    try:
        await asyncio.gather(*(update_document(store, "counter", _add_one, attempts=100) for _ in range(30)))
        assert (await store.get("counter")).value == {"n": 30}  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_change_sees_a_private_copy_and_none_writes_nothing() -> None:
    store = InMemoryStateStore()
    await store.put("doc", {"items": [1]})
    etag = (await store.get("doc")).etag  # type: ignore[union-attr]

    def look(value):  # type: ignore[no-untyped-def]
        value["items"].append(2)  # mutating the copy must not change what is stored
        return None, "looked"

    assert await update_document(store, "doc", look) == "looked"
    doc = await store.get("doc")
    assert doc.value == {"items": [1]} and doc.etag == etag  # type: ignore[union-attr]


async def test_a_race_lost_every_time_ends_in_a_conflict_naming_the_document() -> None:
    calls = 0

    async def always_loses() -> None:
        nonlocal calls
        calls += 1
        raise ConflictError("risks/r1", "ETag does not match")

    with pytest.raises(ConflictError) as caught:
        await retry_on_conflict(always_loses, key="risks/r1", what="risk update", attempts=4)
    assert calls == 4
    assert "risks/r1" in str(caught.value) and "risk update" in str(caught.value)


async def test_other_errors_are_not_retried() -> None:
    calls = 0

    async def refuses() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        await retry_on_conflict(refuses, key="k")
    assert calls == 1
