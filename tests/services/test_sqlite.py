from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from aos_core.errors import StorageUnavailableError
from services.sqlite import SqliteDatabase
from tests.support.loops import run_on_loops

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


def test_callers_on_several_event_loops_each_get_their_own_answers(tmp_path: Path) -> None:
    # One batch often holds calls from several loops (the kernel's loop, its standby loop, a host thread):
    # each loop is woken once per batch with its answers, and no answer goes to another loop's caller.
    db = SqliteDatabase(tmp_path / "t.db", schema=SCHEMA)

    async def caller(n: int) -> list[object]:
        def failing(conn: object) -> None:
            raise KeyError(n)

        async def write(i: int) -> object:
            return await db.write(lambda c: (c.execute("INSERT INTO t VALUES(?,?)", (f"{n}-{i}", i)), f"{n}-{i}")[1])

        async def fail() -> object:
            try:
                await db.write(failing)
            except KeyError as exc:
                return exc.args[0]
            return None

        cancelled = asyncio.ensure_future(db.write(lambda c: c.execute("INSERT INTO t VALUES(?,?)", (f"{n}-c", 0))))
        work = [write(i) for i in range(200)] + [fail(), db.read(lambda c: n)]
        cancelled.cancel()  # a caller that gave up: its write may commit, nobody is answered for it
        return list(await asyncio.gather(*work))

    outcomes = run_on_loops(4, caller)
    for n in range(4):
        assert outcomes[n] == [f"{n}-{i}" for i in range(200)] + [n, n]
    count = asyncio.run(db.read(lambda c: c.execute("SELECT count(*) FROM t WHERE v > 0 OR k LIKE '%-0'")
                                .fetchone()[0]))
    assert count == 4 * 200
    asyncio.run(db.close())


async def test_a_one_statement_write_that_fails_fails_alone_unless_sqlite_itself_failed(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "t.db", schema=SCHEMA)
    await db.write(lambda c: c.execute("INSERT INTO t VALUES('taken', 0)"), one_statement=True)

    def create(key: str, v: int) -> Callable[[sqlite3.Connection], int]:
        def write(conn: sqlite3.Connection) -> int:
            try:
                return conn.execute("INSERT INTO t VALUES(?, ?)", (key, v)).rowcount
            except sqlite3.IntegrityError:
                raise KeyError(key) from None  # as a create-only put turns it into ConflictError
        return write

    writes = [db.write(create(f"k{i}", i), one_statement=True) for i in range(50)]
    writes.insert(25, db.write(create("taken", 1), one_statement=True))  # in the same group as the others
    outcomes = await asyncio.gather(*writes, return_exceptions=True)
    assert [type(o).__name__ for o in outcomes].count("KeyError") == 1 and outcomes.count(1) == 50
    assert await db.read(lambda c: c.execute("SELECT count(*), sum(v) FROM t").fetchone()) == (51, sum(range(50)))

    # SQLite refusing the statement may end the whole transaction: the writes grouped with it fail too, nothing
    # of them is kept, and the next write goes through.
    grouped = [db.write(create(f"g{i}", 1), one_statement=True) for i in range(5)]
    broken = db.write(lambda c: c.execute("INSERT INTO missing VALUES(1)"), one_statement=True)
    outcomes = await asyncio.gather(*grouped, broken, return_exceptions=True)
    assert all(isinstance(o, StorageUnavailableError) for o in outcomes[-1:])
    kept = await db.read(lambda c: c.execute("SELECT count(*) FROM t WHERE k LIKE 'g%'").fetchone()[0])
    assert kept == sum(1 for o in outcomes[:-1] if o == 1)  # what was acknowledged is there, nothing else
    assert await db.write(create("after", 2), one_statement=True) == 1
    await db.close()
