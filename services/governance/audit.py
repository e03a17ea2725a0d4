"""The embedded AuditLog: an append-only SQLite table holding the hash chain (`data_dir/audit.db`).

Appends go through SqliteDatabase's single writer thread, and each one reads the head and inserts in the
same `BEGIN IMMEDIATE` transaction, so concurrent appenders (tasks, threads, or several processes on one
file) always extend the chain one link at a time. Triggers refuse UPDATE and DELETE on entries; the head
(last seq and hash) is kept in its own row, so a cut-off tail is detected too.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aos_core.clock import SystemClock
from aos_core.ports import JSON, AuditEntry, AuditVerification, Clock
from services.governance.chain import GENESIS_HASH, ChainVerifier, PreparedEntry, check_page, prepare_entry
from services.sqlite import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_entries (
    seq INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    payload TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_actor ON audit_entries(actor, seq);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_entries(action, seq);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_entries(subject, seq);
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit_entries
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

_COLUMNS = "seq, time, actor, action, subject, payload, payload_hash, prev_hash, hash"
_VERIFY_PAGE = 5000
_PAGE_SQL = f"SELECT {_COLUMNS} FROM audit_entries WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?"


def _row_entry(row: tuple[object, ...]) -> AuditEntry:
    seq, time, actor, action, subject, payload, payload_digest, prev_hash, digest = row
    return AuditEntry(seq=int(seq), time=datetime.fromisoformat(str(time)), actor=str(actor), action=str(action),  # type: ignore[arg-type]
                      subject=str(subject), payload=json.loads(str(payload)), payload_hash=str(payload_digest),
                      prev_hash=str(prev_hash), hash=str(digest))


class SqliteAuditLog:
    """AuditLog over SQLite. `hmac_key` (from the SecretStore) keys every entry hash; never logged."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None, hmac_key: bytes | str | None = None,
                 synchronous: str = "NORMAL") -> None:
        self.db = SqliteDatabase(path, schema=SCHEMA, synchronous=synchronous)
        self.clock = clock or SystemClock()
        self._key = hmac_key.encode("utf-8") if isinstance(hmac_key, str) else hmac_key
        # Appends waiting to be written, per event loop: each loop writes its own group (its futures are its own).
        self._queues: dict[asyncio.AbstractEventLoop, list[tuple[list[PreparedEntry],
                                                                 asyncio.Future[list[AuditEntry]]]]] = {}
        self._writing: set[asyncio.Task[None]] = set()

    @property
    def path(self) -> str:
        return self.db.path

    async def append(self, actor: str, action: str, subject: str, payload: JSON = None) -> AuditEntry:
        """Append one entry and return it once committed. InvalidAuditEntry (nothing written) on bad input.

        Appends made while one is waiting to be written join it: one transaction links them all (one head read,
        one insert of many rows), which is what keeps an audited event path fast under load.
        """
        return (await self.append_many([(actor, action, subject, payload)]))[0]

    async def append_many(self, items: Sequence[tuple[str, str, str, JSON]]) -> list[AuditEntry]:
        """Append `(actor, action, subject, payload)` entries, linked in this order, and return them once
        committed. All or none: one bad item (InvalidAuditEntry) writes nothing."""
        # Validated and hashed outside the transaction, so bad input never reaches SQLite and only the links to
        # the previous entries are computed under the database's lock.
        now = self.clock.now()
        prepared = [prepare_entry(now, actor, action, subject, payload) for actor, action, subject, payload in items]
        if not prepared:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[AuditEntry]] = loop.create_future()
        waiting = self._queues.get(loop)
        if waiting is None:  # the first append of a group on this loop: write the group on its next turn
            waiting = self._queues[loop] = []
            loop.call_soon(self._flush_soon, loop)
        waiting.append((prepared, future))
        return await future

    def _flush_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._queues.pop(loop)
        task = loop.create_task(self._write(batch))
        self._writing.add(task)
        task.add_done_callback(self._writing.discard)

    async def _write(self, batch: list[tuple[list[PreparedEntry], asyncio.Future[list[AuditEntry]]]]) -> None:
        key = self._key
        prepared = [p for group, _ in batch for p in group]

        def write(conn: sqlite3.Connection) -> list[AuditEntry]:
            head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            seq, prev = (head[0], head[1]) if head else (0, GENESIS_HASH)
            entries = []
            for entry in prepared:
                seq += 1
                linked = entry.link(seq, prev, key)
                entries.append(linked)
                prev = linked.hash
            conn.executemany(f"INSERT INTO audit_entries ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [(e.seq, e.time.isoformat(), e.actor, e.action, e.subject, p.payload_json,
                               e.payload_hash, e.prev_hash, e.hash) for e, p in zip(entries, prepared, strict=True)])
            conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                         "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                         (entries[-1].seq, entries[-1].hash))
            return entries

        try:
            entries = await self.db.write(write)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for group, future in batch:
            if not future.done():
                future.set_result(entries[start:start + len(group)])
            start += len(group)

    async def entries(self, after: int = 0, limit: int = 100, actor: str | None = None, action: str | None = None,
                      subject: str | None = None) -> list[AuditEntry]:
        """Entries with seq > `after`, in seq order, at most `limit` (1..1000), filtered by exact values."""
        check_page(after, limit)
        clauses: list[str] = ["seq > ?"]
        params: list[object] = [after]
        for column, value in (("actor", actor), ("action", action), ("subject", subject)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM audit_entries WHERE {' AND '.join(clauses)} ORDER BY seq LIMIT ?"
        rows = await self.db.read(lambda conn: conn.execute(sql, (*params, limit)).fetchall())
        return [_row_entry(row) for row in rows]

    async def head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last entry as the log recorded it, or None when empty."""
        row = await self.db.read(lambda conn: conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone())
        return (int(row[0]), str(row[1])) if row else None

    async def verify(self) -> AuditVerification:
        """Check every entry up to the current head, page by page; names the first bad entry."""

        def snapshot(conn: sqlite3.Connection) -> tuple[tuple[int, str] | None, int]:
            head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            last = conn.execute("SELECT max(seq) FROM audit_entries").fetchone()[0]
            return ((int(head[0]), str(head[1])) if head else (0, GENESIS_HASH)), int(last or 0)

        head, last = await self.db.read(snapshot)
        verifier = ChainVerifier(self._key)
        after = 0
        while after < last:
            rows = await self.db.read(lambda conn, a=after: conn.execute(_PAGE_SQL, (a, last, _VERIFY_PAGE)).fetchall())
            if not rows:
                break
            for row in rows:
                try:
                    entry = _row_entry(row)
                except (ValueError, TypeError):  # a field that no longer parses was tampered with
                    verifier.fail_next("cannot be read (changed)")
                    return verifier.result()
                if not verifier.feed(entry):
                    return verifier.result()
            after = int(rows[-1][0])
        return verifier.result(head)

    async def close(self) -> None:
        await self.db.close()
