"""One SQLite database served by one thread, with group commit.

Every embedded adapter (state store, bus, audit) talks to SQLite through this, so there is one place that
knows about threads, transactions and durability. Writes queued while a transaction is open join it and
are acknowledged together after COMMIT (group commit); each write runs under its own SAVEPOINT, so a
failing write is rolled back alone and its exception goes to its caller only. A read first commits any
open batch, so nobody ever reads data that is not yet durable.

Durability: WAL with `synchronous=NORMAL` survives a process crash (kill -9) without losing a committed
transaction; use `synchronous="FULL"` to also survive power loss.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from services.private_files import ensure_private_file

T = TypeVar("T")

_READ, _WRITE, _CLOSE = 0, 1, 2
_MAX_BATCH = 512


class SqliteDatabase:
    def __init__(self, path: str | Path, *, schema: str = "", synchronous: str = "NORMAL") -> None:
        self.path = str(path)
        self._schema = schema
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[tuple[int, Callable[[sqlite3.Connection], Any] | None, Any]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if self.path != ":memory:":  # SQLite gives the -wal and -shm files the database file's mode
                ensure_private_file(self.path)
            ready: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
            self._thread = threading.Thread(target=self._serve, args=(ready,), name=f"sqlite:{self.path}", daemon=True)
            self._thread.start()
            error = ready.get()
            if error is not None:
                self._thread = None
                raise error

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the database thread and return its result."""
        return await self._submit(_READ, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` in a transaction; return its result once the transaction is committed."""
        return await self._submit(_WRITE, fn)

    async def _submit(self, kind: int, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread is None:
            self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((kind, fn, (loop, future)))
        return await future

    async def close(self) -> None:
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put((_CLOSE, None, (loop, future)))
        await future
        self._thread = None

    # --- database thread ----------------------------------------------------------------------------

    def _serve(self, ready: queue.SimpleQueue[BaseException | None]) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA foreign_keys=ON")
            if self._schema:
                conn.executescript(self._schema)
        except BaseException as exc:  # reported to the opener
            ready.put(exc)
            return
        ready.put(None)
        pending: list[tuple[Any, Any]] = []  # (waiter, result) of writes in the open transaction
        while True:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for kind, fn, waiter in batch:
                if kind == _WRITE:
                    try:
                        if not conn.in_transaction:
                            conn.execute("BEGIN IMMEDIATE")
                        conn.execute("SAVEPOINT w")
                    except sqlite3.Error as exc:  # busy past the timeout, disk full: fail this write, keep serving
                        _resolve(waiter, error=exc)
                        continue
                    try:
                        result = fn(conn)  # type: ignore[misc]
                    except BaseException as exc:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                        _resolve(waiter, error=exc)
                    else:
                        conn.execute("RELEASE w")
                        pending.append((waiter, result))
                    continue
                self._commit(conn, pending)
                if kind == _CLOSE:
                    conn.close()
                    _resolve(waiter, result=None)
                    self._refuse_rest(batch[batch.index((kind, fn, waiter)) + 1:])
                    return
                try:
                    result = fn(conn)  # type: ignore[misc]
                except BaseException as exc:
                    _resolve(waiter, error=exc)
                else:
                    _resolve(waiter, result=result)
            self._commit(conn, pending)

    def _refuse_rest(self, queued: list[tuple[int, Any, Any]]) -> None:
        # Calls that arrived behind close() get an error instead of waiting forever.
        while True:
            try:
                queued.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for _, _, waiter in queued:
            _resolve(waiter, error=RuntimeError(f"database {self.path} was closed"))

    @staticmethod
    def _commit(conn: sqlite3.Connection, pending: list[tuple[Any, Any]]) -> None:
        if not conn.in_transaction:
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            for waiter, _ in pending:
                _resolve(waiter, error=exc)
        else:
            for waiter, result in pending:
                _resolve(waiter, result=result)
        pending.clear()


def _resolve(waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]], *, result: Any = None,
             error: BaseException | None = None) -> None:
    loop, future = waiter

    def settle() -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the caller's loop is closed; nobody is waiting any more
        pass
