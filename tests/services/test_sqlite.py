from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.sqlite import SqliteDatabase

SCHEMA = "CREATE TABLE IF NOT EXISTS t(k TEXT PRIMARY KEY, v INT);"


async def test_concurrent_writes_are_grouped_and_a_failing_one_rolls_back_alone(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "t.db", schema=SCHEMA)

    results = await asyncio.gather(*(db.write(lambda c, i=i: c.execute("INSERT INTO t VALUES(?,?)", (str(i), i))
                                              .rowcount) for i in range(500)))
    assert results == [1] * 500

    def bad(conn: object) -> None:
        conn.execute("INSERT INTO t VALUES('x', 1)")  # type: ignore[attr-defined]
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await db.write(bad)
    assert await db.read(lambda c: c.execute("SELECT count(*) FROM t").fetchone()[0]) == 500
    await db.close()


async def test_calls_behind_close_get_an_error_not_a_hang(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "t.db", schema=SCHEMA)
    await db.read(lambda c: None)
    closing = asyncio.ensure_future(db.close())
    late = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO t VALUES('late', 1)")))
    await closing
    done, _ = await asyncio.wait({late}, timeout=5)
    assert late in done
    assert isinstance(late.exception(), RuntimeError) or late.exception() is None
