"""One SQLite database served by one thread, with group commit.

Every embedded adapter (state store, bus, audit) talks to SQLite through this, so there is one place that
knows about threads, transactions and durability. Writes queued while a transaction is open join it and
are acknowledged together after COMMIT (group commit); each write runs under its own SAVEPOINT, so a
failing write is rolled back alone and its exception goes to its caller only. A write of one statement
(`one_statement=True`) needs none: SQLite undoes a failed statement by itself. A read first commits any
open batch, so nobody ever reads data that is not yet durable. The answers of one batch reach each waiting
event loop in one wake-up (one `call_soon_threadsafe` per loop, not one per call).

Durability: WAL with `synchronous=NORMAL` survives a process crash (kill -9) without losing a committed
transaction; use `synchronous="FULL"` to also survive power loss.

Faults: when SQLite refuses (disk full, I/O error, locked past the busy timeout) the writes of that
transaction fail with StorageUnavailableError, the transaction is rolled back, and the thread keeps serving:
the next write tries again, so the database heals by itself once the fault clears. `last_fault` says what
the last failure was until a write succeeds again (for readiness checks).
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aos_core.errors import StorageUnavailableError
from services.private_files import ensure_private_file

T = TypeVar("T")

_READ, _WRITE, _CLOSE, _WRITE_ONE = 0, 1, 2, 3
_MAX_BATCH = 512
_MIN_FREE_BYTES = 1 << 20  # below this the disk counts as full for readiness


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
        self.last_fault: str | None = None  # the last storage failure, cleared by the next successful commit

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

    def readiness(self) -> str | None:
        """None when writes can be expected to succeed; else why not (the last fault, or a full disk)."""
        if self.last_fault is not None:
            return self.last_fault
        if self.path == ":memory:":
            return None
        try:
            stat = os.statvfs(Path(self.path).parent)
        except OSError as exc:
            return f"{type(exc).__name__}: {exc.strerror}"
        free = stat.f_bavail * stat.f_frsize
        return f"disk full: {free} bytes free" if free < _MIN_FREE_BYTES else None

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the database thread and return its result."""
        return await self._submit(_READ, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, one_statement: bool = False) -> T:
        """Run `fn(conn)` in a transaction; return its result once the transaction is committed.

        `one_statement`: `fn` changes the database with one statement at most, so when it raises nothing of its
        own is left to undo (SQLite rolls a failed statement back) and no savepoint is taken for it.
        """
        return await self._submit(_WRITE_ONE if one_statement else _WRITE, fn)

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
        answers = _Answers()
        while True:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            for index, (kind, fn, waiter) in enumerate(batch):
                try:
                    if kind == _WRITE or kind == _WRITE_ONE:
                        self._write(conn, fn, waiter, pending, answers, savepoint=kind == _WRITE)  # type: ignore[arg-type]
                        continue
                    self._commit(conn, pending, answers)
                    if kind == _CLOSE:
                        conn.close()
                        answers.add(waiter, result=None)
                        self._refuse_rest(batch[index + 1:], answers)
                        answers.send()
                        return
                    try:
                        result = fn(conn)  # type: ignore[misc]
                    except BaseException as exc:
                        answers.add(waiter, error=self._fault_or(exc))
                    else:
                        answers.add(waiter, result=result)
                except BaseException as exc:  # never let the serving thread die: fail what is open, go on
                    answers.add(waiter, error=self._fault_or(exc))
                    self._abort(conn, pending, exc, answers)
            try:
                self._commit(conn, pending, answers)
            except BaseException as exc:
                self._abort(conn, pending, exc, answers)
            answers.send()

    def _write(self, conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], Any], waiter: Any,
               pending: list[tuple[Any, Any]], answers: _Answers, *, savepoint: bool) -> None:
        try:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            if savepoint:
                conn.execute("SAVEPOINT w")
        except sqlite3.Error as exc:  # busy past the timeout, disk full: fail this write, keep serving
            answers.add(waiter, error=self._fault_or(exc))
            return
        try:
            result = fn(conn)
        except BaseException as exc:
            if savepoint:
                try:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                except sqlite3.Error:  # the savepoint is gone with the transaction: the open batch fails too
                    self._abort(conn, pending, exc, answers)
            elif isinstance(exc, sqlite3.Error) or not conn.in_transaction:
                # SQLite itself failed (disk full, I/O): it may have ended the transaction, so it all fails
                self._abort(conn, pending, exc, answers)
            answers.add(waiter, error=self._fault_or(exc))
        else:
            if savepoint:
                conn.execute("RELEASE w")
            pending.append((waiter, result))

    def _fault_or(self, exc: BaseException) -> BaseException:
        # SQLite refusing (full, I/O, locked) is a storage fault; a constraint or a bug in `fn` stays as it is.
        return self._fault(exc) if isinstance(exc, sqlite3.OperationalError) else exc

    def _fault(self, exc: BaseException) -> StorageUnavailableError:
        self.last_fault = f"{type(exc).__name__}: {exc}"
        fault = StorageUnavailableError(f"storage unavailable: {exc}")
        fault.__cause__ = exc
        return fault

    def _abort(self, conn: sqlite3.Connection, pending: list[tuple[Any, Any]], exc: BaseException,
               answers: _Answers) -> None:
        # Roll back whatever is open (a failed COMMIT may or may not have ended the transaction) and fail the
        # writes that were waiting for it: none of them is durable.
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        error = self._fault(exc) if isinstance(exc, sqlite3.OperationalError) else StorageUnavailableError(
            f"storage unavailable: the transaction was rolled back after {type(exc).__name__}")
        for waiter, _ in pending:
            answers.add(waiter, error=error)
        pending.clear()

    def _refuse_rest(self, queued: list[tuple[int, Any, Any]], answers: _Answers) -> None:
        # Calls that arrived behind close() get an error instead of waiting forever.
        while True:
            try:
                queued.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for _, _, waiter in queued:
            answers.add(waiter, error=RuntimeError(f"database {self.path} was closed"))

    def _commit(self, conn: sqlite3.Connection, pending: list[tuple[Any, Any]], answers: _Answers) -> None:
        if not conn.in_transaction:
            return
        answers.send()  # what is answered already (reads, refused writes) does not wait for the disk
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._abort(conn, pending, exc, answers)
        else:
            self.last_fault = None
            for waiter, result in pending:
                answers.add(waiter, result=result)
        pending.clear()


_Waiter = tuple[asyncio.AbstractEventLoop, asyncio.Future[Any]]


class _Answers:
    """Results and errors of one batch, handed to each waiting event loop in a single callback: a wake-up of a
    loop from another thread (`call_soon_threadsafe` writes to its self-pipe) costs more than settling a future."""

    __slots__ = ("_by_loop",)

    def __init__(self) -> None:
        self._by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}

    def add(self, waiter: _Waiter, *, result: Any = None, error: BaseException | None = None) -> None:
        loop, future = waiter
        self._by_loop.setdefault(loop, []).append((future, result, error))

    def send(self) -> None:
        by_loop, self._by_loop = self._by_loop, {}
        for loop, settled in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, settled)
            except RuntimeError:  # the caller's loop is closed; nobody is waiting any more
                pass


def _settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        if future.done():  # its caller was cancelled
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
