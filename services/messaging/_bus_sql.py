"""The SQLite bus's tables and the transactions that run on the database thread.

Every function here takes a connection and runs inside one `SqliteDatabase.write` (or `read`), so each bus
operation is one atomic transaction: a message is locked by exactly one receiver, and a publish or settle is
either fully committed or not at all (safe under kill -9). Functions return plain rows; the event loop builds
`Event`s from them, so pydantic work never holds the database thread.

Times are float seconds since the epoch (from the bus's Clock). A message row's `available_at` is when it can
next be received: the scheduled time, or the end of its lock while `lock_token` is set.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
import uuid
from dataclasses import dataclass
from functools import lru_cache

from aos_core.errors import LockLostError, NotFoundError
from aos_core.ports import SubscriptionFilter

SCHEMA = """
CREATE TABLE IF NOT EXISTS bus_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    correlationid TEXT,
    body TEXT NOT NULL,
    published REAL NOT NULL,
    UNIQUE (topic, event_id)
);
CREATE INDEX IF NOT EXISTS bus_events_correlation ON bus_events (correlationid, seq)
    WHERE correlationid IS NOT NULL;
CREATE TABLE IF NOT EXISTS bus_subscriptions (
    id INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    name TEXT NOT NULL,
    filter TEXT NOT NULL,
    max_delivery_count INTEGER NOT NULL,
    lock_duration REAL NOT NULL,
    UNIQUE (topic, name)
);
CREATE TABLE IF NOT EXISTS bus_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    sub_id INTEGER NOT NULL REFERENCES bus_subscriptions (id),
    event_seq INTEGER NOT NULL REFERENCES bus_events (seq),
    available_at REAL NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    lock_token TEXT,
    enqueued REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_messages_fifo ON bus_messages (sub_id, seq, available_at);
CREATE INDEX IF NOT EXISTS bus_messages_locks ON bus_messages (sub_id, available_at) WHERE lock_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS bus_dead_letters (
    seq INTEGER PRIMARY KEY,
    sub_id INTEGER NOT NULL REFERENCES bus_subscriptions (id),
    event_seq INTEGER NOT NULL REFERENCES bus_events (seq),
    delivery_count INTEGER NOT NULL,
    reason TEXT NOT NULL,
    description TEXT,
    dead_lettered REAL NOT NULL,
    enqueued REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS bus_dead_letters_sub ON bus_dead_letters (sub_id, seq);
"""

MAX_DELIVERY_COUNT_EXCEEDED = "MaxDeliveryCountExceeded"


@dataclass(frozen=True, slots=True)
class Sub:
    id: int
    max_delivery_count: int
    lock_duration: float


@dataclass(frozen=True, slots=True)
class LockedRow:
    seq: int
    delivery_count: int
    lock_token: str
    locked_until: float
    enqueued: float
    body: str


# --- filters ------------------------------------------------------------------------------------


def encode_filter(flt: SubscriptionFilter | None) -> str:
    flt = flt or SubscriptionFilter()
    return json.dumps({"event_types": list(flt.event_types), "subject": flt.subject,
                       "correlationid": flt.correlationid}, sort_keys=True)


@lru_cache(maxsize=1024)
def decode_filter(raw: str) -> SubscriptionFilter:
    value = json.loads(raw)
    return SubscriptionFilter(tuple(value["event_types"]), value["subject"], value["correlationid"])


def matches(flt: SubscriptionFilter, event_type: str, subject: str | None, correlationid: str | None) -> bool:
    if flt.event_types and not any(fnmatch.fnmatchcase(event_type, p) for p in flt.event_types):
        return False
    if flt.subject is not None and flt.subject != subject:
        return False
    return flt.correlationid is None or flt.correlationid == correlationid


# --- subscriptions and publishing ---------------------------------------------------------------


def upsert_subscription(conn: sqlite3.Connection, topic: str, name: str, flt: str, max_delivery_count: int,
                        lock_duration: float) -> None:
    conn.execute(
        "INSERT INTO bus_subscriptions (topic, name, filter, max_delivery_count, lock_duration) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (topic, name) DO UPDATE SET filter = excluded.filter, "
        "max_delivery_count = excluded.max_delivery_count, lock_duration = excluded.lock_duration",
        (topic, name, flt, max_delivery_count, lock_duration),
    )


def find_sub(conn: sqlite3.Connection, topic: str, name: str) -> Sub:
    row = conn.execute(
        "SELECT id, max_delivery_count, lock_duration FROM bus_subscriptions WHERE topic = ? AND name = ?",
        (topic, name),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"subscription {topic}/{name} does not exist")
    return Sub(*row)


def publish(conn: sqlite3.Connection, topic: str, event_id: str, event_type: str, subject: str | None,
            correlationid: str | None, body: str, now: float, available_at: float) -> list[str] | None:
    """Log the event and copy it to every matching subscription; None if the id was already published here."""
    cur = conn.execute(
        "INSERT INTO bus_events (topic, event_id, correlationid, body, published) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (topic, event_id) DO NOTHING",
        (topic, event_id, correlationid, body, now),
    )
    if cur.rowcount == 0:
        return None  # duplicate detection: the first publish of this id on this topic wins
    event_seq = cur.lastrowid
    targets = [(sub_id, name) for sub_id, name, flt in
               conn.execute("SELECT id, name, filter FROM bus_subscriptions WHERE topic = ? ORDER BY id", (topic,))
               if matches(decode_filter(flt), event_type, subject, correlationid)]
    conn.executemany(
        "INSERT INTO bus_messages (sub_id, event_seq, available_at, enqueued) VALUES (?, ?, ?, ?)",
        [(sub_id, event_seq, available_at, now) for sub_id, _ in targets],
    )
    return [name for _, name in targets]


# --- receiving ----------------------------------------------------------------------------------


def expire_locks(conn: sqlite3.Connection, sub: Sub, now: float) -> None:
    """Dead-letter messages whose lock expired on their last allowed delivery (expiry counts as a failure)."""
    rows = conn.execute(
        "SELECT seq, delivery_count FROM bus_messages "
        "WHERE sub_id = ? AND lock_token IS NOT NULL AND available_at <= ? AND delivery_count >= ?",
        (sub.id, now, sub.max_delivery_count),
    ).fetchall()
    for seq, count in rows:
        move_to_dead_letters(conn, seq, MAX_DELIVERY_COUNT_EXCEEDED, f"lock expired on delivery {count}", now)


def lock_messages(conn: sqlite3.Connection, topic: str, name: str, max_messages: int, now: float) -> list[LockedRow]:
    sub = find_sub(conn, topic, name)
    expire_locks(conn, sub, now)
    rows = conn.execute(
        "SELECT m.seq, m.delivery_count, m.enqueued, e.body FROM bus_messages m "
        "JOIN bus_events e ON e.seq = m.event_seq WHERE m.sub_id = ? AND m.available_at <= ? ORDER BY m.seq LIMIT ?",
        (sub.id, now, max_messages),
    ).fetchall()
    locked_until = now + sub.lock_duration
    locked = [LockedRow(seq, count + 1, uuid.uuid4().hex, locked_until, enqueued, body)
              for seq, count, enqueued, body in rows]
    conn.executemany(
        "UPDATE bus_messages SET delivery_count = ?, lock_token = ?, available_at = ? WHERE seq = ?",
        [(row.delivery_count, row.lock_token, locked_until, row.seq) for row in locked],
    )
    return locked


def has_available(conn: sqlite3.Connection, topic: str, name: str, now: float) -> bool:
    """Whether a receive would find something to lock (or an expired last delivery to dead-letter)."""
    row = conn.execute(
        "SELECT 1 FROM bus_messages WHERE available_at <= ? AND sub_id = "
        "(SELECT id FROM bus_subscriptions WHERE topic = ? AND name = ?) LIMIT 1",
        (now, topic, name),
    ).fetchone()
    return row is not None


def unlock_undelivered(conn: sqlite3.Connection, locks: list[tuple[int, str]], now: float) -> None:
    """Undo a receive whose caller was cancelled before it got the messages: not a delivery, so no count."""
    conn.executemany(
        "UPDATE bus_messages SET lock_token = NULL, available_at = ?, delivery_count = delivery_count - 1 "
        "WHERE seq = ? AND lock_token = ?",
        [(now, seq, token) for seq, token in locks],
    )


# --- settling -----------------------------------------------------------------------------------


def _held(conn: sqlite3.Connection, topic: str, name: str, seq: int, token: str, now: float) -> tuple[int, int, float]:
    row = conn.execute(
        "SELECT m.delivery_count, s.max_delivery_count, s.lock_duration FROM bus_messages m "
        "JOIN bus_subscriptions s ON s.id = m.sub_id "
        "WHERE m.seq = ? AND m.lock_token = ? AND m.available_at > ? AND s.topic = ? AND s.name = ?",
        (seq, token, now, topic, name),
    ).fetchone()
    if row is None:
        raise LockLostError(f"message {seq} on {topic}/{name}: lock expired or message already settled")
    return row


def complete(conn: sqlite3.Connection, topic: str, name: str, seq: int, token: str, now: float) -> None:
    _held(conn, topic, name, seq, token, now)
    conn.execute("DELETE FROM bus_messages WHERE seq = ?", (seq,))


def abandon(conn: sqlite3.Connection, topic: str, name: str, seq: int, token: str, now: float,
            reason: str | None) -> bool:
    """Release the lock; True if the message is available again, False if it went to the dead letters."""
    count, max_count, _ = _held(conn, topic, name, seq, token, now)
    if count >= max_count:
        description = reason or f"abandoned on delivery {count}"
        move_to_dead_letters(conn, seq, MAX_DELIVERY_COUNT_EXCEEDED, description, now)
        return False
    conn.execute("UPDATE bus_messages SET lock_token = NULL, available_at = ? WHERE seq = ?", (now, seq))
    return True


def dead_letter(conn: sqlite3.Connection, topic: str, name: str, seq: int, token: str, now: float, reason: str,
                description: str | None) -> None:
    _held(conn, topic, name, seq, token, now)
    move_to_dead_letters(conn, seq, reason, description, now)


def renew_lock(conn: sqlite3.Connection, topic: str, name: str, seq: int, token: str, now: float) -> float:
    _, _, lock_duration = _held(conn, topic, name, seq, token, now)
    conn.execute("UPDATE bus_messages SET available_at = ? WHERE seq = ?", (now + lock_duration, seq))
    return now + lock_duration


def move_to_dead_letters(conn: sqlite3.Connection, seq: int, reason: str, description: str | None,
                         now: float) -> None:
    conn.execute(
        "INSERT INTO bus_dead_letters (seq, sub_id, event_seq, delivery_count, reason, description, dead_lettered, "
        "enqueued) SELECT seq, sub_id, event_seq, delivery_count, ?, ?, ?, enqueued FROM bus_messages WHERE seq = ?",
        (reason, description, now, seq),
    )
    conn.execute("DELETE FROM bus_messages WHERE seq = ?", (seq,))


# --- dead letters, stats, conversations ----------------------------------------------------------


def list_dead_letters(conn: sqlite3.Connection, topic: str, name: str,
                      now: float) -> list[tuple[int, int, str, str | None, float, str]]:
    sub = find_sub(conn, topic, name)
    expire_locks(conn, sub, now)
    return conn.execute(
        "SELECT d.seq, d.delivery_count, d.reason, d.description, d.dead_lettered, e.body FROM bus_dead_letters d "
        "JOIN bus_events e ON e.seq = d.event_seq WHERE d.sub_id = ? ORDER BY d.seq",
        (sub.id,),
    ).fetchall()


def resubmit(conn: sqlite3.Connection, topic: str, name: str, seq: int, now: float) -> int:
    """Move a dead letter back as a new message (new sequence number, delivery count 0), like Service Bus."""
    sub = find_sub(conn, topic, name)
    row = conn.execute("SELECT event_seq FROM bus_dead_letters WHERE seq = ? AND sub_id = ?", (seq, sub.id)).fetchone()
    if row is None:
        raise NotFoundError(f"no dead letter {seq} on {topic}/{name}")
    conn.execute("DELETE FROM bus_dead_letters WHERE seq = ?", (seq,))
    cur = conn.execute("INSERT INTO bus_messages (sub_id, event_seq, available_at, enqueued) VALUES (?, ?, ?, ?)",
                       (sub.id, row[0], now, now))
    return int(cur.lastrowid or 0)


def stats(conn: sqlite3.Connection, topic: str, name: str, now: float) -> dict[str, int]:
    sub = find_sub(conn, topic, name)
    expire_locks(conn, sub, now)
    active, scheduled, locked = conn.execute(
        "SELECT COALESCE(SUM(available_at <= ?1), 0), "
        "COALESCE(SUM(available_at > ?1 AND lock_token IS NULL), 0), "
        "COALESCE(SUM(available_at > ?1 AND lock_token IS NOT NULL), 0) FROM bus_messages WHERE sub_id = ?2",
        (now, sub.id),
    ).fetchone()
    (dead,) = conn.execute("SELECT COUNT(*) FROM bus_dead_letters WHERE sub_id = ?", (sub.id,)).fetchone()
    return {"active": active, "scheduled": scheduled, "locked": locked, "dead_lettered": dead}


def conversation(conn: sqlite3.Connection, correlation_id: str) -> list[str]:
    rows = conn.execute("SELECT body FROM bus_events WHERE correlationid = ? ORDER BY seq", (correlation_id,))
    return [body for (body,) in rows]
