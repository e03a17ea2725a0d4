"""The host's own SQLite file (`<data>/host.db`): entity state, entity signal queue, timer last runs.

Every function here runs on the `SqliteDatabase` thread inside one transaction (see services/sqlite.py), so
an accepted signal is durable before its 202, and a batch's new state, the removal of the operations it ran
and the signals it sent commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

SCHEMA = """
CREATE TABLE IF NOT EXISTS entity_state (
    name TEXT NOT NULL, key TEXT NOT NULL, exists_ INTEGER NOT NULL, state TEXT,
    operations INTEGER NOT NULL DEFAULT 0, last_error TEXT, updated REAL NOT NULL,
    PRIMARY KEY (name, key));
CREATE TABLE IF NOT EXISTS entity_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, key TEXT NOT NULL, operation TEXT NOT NULL,
    input TEXT, request_id TEXT NOT NULL, enqueued REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entity_queue_key ON entity_queue (name, key, seq);
CREATE TABLE IF NOT EXISTS timer_runs (name TEXT PRIMARY KEY, last_slot TEXT NOT NULL, last_run TEXT NOT NULL);
"""


@dataclass(frozen=True)
class QueuedOperation:
    seq: int
    operation: str
    input: str | None
    request_id: str


@dataclass(frozen=True)
class EntityRow:
    name: str
    key: str
    exists: bool
    state: str | None
    operations: int
    last_error: str | None
    pending: int


def enqueue(conn: sqlite3.Connection, rows: list[tuple[str, str, str, str | None, str]], now: float) -> None:
    """Queue signals: (name, key, operation, input JSON, request id)."""
    conn.executemany("INSERT INTO entity_queue (name, key, operation, input, request_id, enqueued) "
                     "VALUES (?, ?, ?, ?, ?, ?)", [(*row, now) for row in rows])


def pending_keys(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [(n, k) for n, k in conn.execute("SELECT DISTINCT name, key FROM entity_queue")]


def load_batch(conn: sqlite3.Connection, name: str, key: str, limit: int
               ) -> tuple[bool, str | None, list[QueuedOperation]]:
    row = conn.execute("SELECT exists_, state FROM entity_state WHERE name = ? AND key = ?", (name, key)).fetchone()
    ops = [QueuedOperation(*r) for r in conn.execute(
        "SELECT seq, operation, input, request_id FROM entity_queue WHERE name = ? AND key = ? ORDER BY seq LIMIT ?",
        (name, key, limit))]
    return (bool(row[0]), row[1], ops) if row else (False, None, ops)


def commit_batch(conn: sqlite3.Connection, name: str, key: str, last_seq: int, count: int, exists: bool,
                 state: str | None, error: str | None, signals: list[tuple[str, str, str, str | None, str]],
                 now: float) -> None:
    """The batch's outcome in one transaction: new state, its operations removed, its signals queued."""
    conn.execute(
        "INSERT INTO entity_state (name, key, exists_, state, operations, last_error, updated) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, key) DO UPDATE SET exists_ = excluded.exists_, "
        "state = excluded.state, operations = operations + excluded.operations, "
        "last_error = COALESCE(excluded.last_error, last_error), updated = excluded.updated",
        (name, key, int(exists), state if exists else None, count, error, now))
    conn.execute("DELETE FROM entity_queue WHERE name = ? AND key = ? AND seq <= ?", (name, key, last_seq))
    enqueue(conn, signals, now)


def read_state(conn: sqlite3.Connection, name: str, key: str) -> str | None:
    row = conn.execute("SELECT state FROM entity_state WHERE name = ? AND key = ? AND exists_ = 1",
                       (name, key)).fetchone()
    return row[0] if row else None


def list_entities(conn: sqlite3.Connection, limit: int = 200) -> list[EntityRow]:
    rows = conn.execute(
        "SELECT k.name, k.key, COALESCE(s.exists_, 0), s.state, COALESCE(s.operations, 0), s.last_error, "
        "(SELECT COUNT(*) FROM entity_queue q WHERE q.name = k.name AND q.key = k.key) "
        "FROM (SELECT name, key FROM entity_state UNION SELECT name, key FROM entity_queue) k "
        "LEFT JOIN entity_state s ON s.name = k.name AND s.key = k.key ORDER BY k.name, k.key LIMIT ?", (limit,))
    return [EntityRow(n, k, bool(e), s, o, err, p) for n, k, e, s, o, err, p in rows]


def timer_last(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT last_slot FROM timer_runs WHERE name = ?", (name,)).fetchone()
    return row[0] if row else None


def timer_record(conn: sqlite3.Connection, name: str, slot: str, ran: str) -> None:
    conn.execute("INSERT INTO timer_runs (name, last_slot, last_run) VALUES (?, ?, ?) "
                 "ON CONFLICT (name) DO UPDATE SET last_slot = excluded.last_slot, last_run = excluded.last_run",
                 (name, slot, ran))
