"""Orchestration instances, their history and their pending work, in the host's SQLite file (`host.db`).

Tables: `orch_instances` (one row per instance: status, input, output, custom status, the replay bookkeeping),
`orch_history` (the instance's history events, in order, as the Durable out-of-proc protocol gives them to the
orchestrator), `orch_inbox` (messages not yet in the history: ExecutionStarted, TaskCompleted, TimerFired with
the time it is due, EventRaised, ExecutionTerminated, ...), `orch_work` (activities to run) and
`orch_entity_calls` (entity operations an orchestrator waits for).

Every function here runs on the `SqliteDatabase` thread inside one transaction, so an episode's new history,
the removal of the messages it consumed and the work it started commit together or not at all; an activity's
result is written in the transaction that removes its work item, so a completed activity never runs again.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS orch_instances (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, execution_id TEXT NOT NULL, status TEXT NOT NULL,
    input TEXT, output TEXT, custom_status TEXT, created REAL NOT NULL, updated REAL NOT NULL,
    parent_instance TEXT, parent_task INTEGER, progress TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orch_history (
    instance_id TEXT NOT NULL, seq INTEGER NOT NULL, event TEXT NOT NULL, PRIMARY KEY (instance_id, seq));
CREATE TABLE IF NOT EXISTS orch_inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, event TEXT NOT NULL, due REAL NOT NULL);
CREATE INDEX IF NOT EXISTS orch_inbox_instance ON orch_inbox (instance_id, seq);
CREATE INDEX IF NOT EXISTS orch_inbox_due ON orch_inbox (due);
CREATE TABLE IF NOT EXISTS orch_work (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL, execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL, name TEXT NOT NULL, input TEXT);
CREATE TABLE IF NOT EXISTS orch_entity_calls (
    request_id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, execution_id TEXT NOT NULL);
"""

RUNNING = ("Pending", "Running")
FINISHED = ("Completed", "Failed", "Terminated")


class InstanceMissing(Exception):
    """No instance with that id (404)."""


class InstanceGone(Exception):
    """The instance has finished and takes no more messages (410)."""


class InstanceBusy(Exception):
    """The instance is still running, so it cannot be replaced or purged (409)."""


@dataclass
class Instance:
    instance_id: str
    name: str
    execution_id: str
    status: str
    input: str | None
    output: str | None
    custom_status: str | None
    created: float
    updated: float
    parent_instance: str | None
    parent_task: int | None
    progress: dict[str, Any]


@dataclass
class Message:
    seq: int
    event: dict[str, Any]


@dataclass
class WorkItem:
    seq: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass
class NewInstance:
    instance_id: str
    name: str
    execution_id: str
    input: str | None
    started: dict[str, Any]  # the ExecutionStarted message
    parent_instance: str | None = None
    parent_task: int | None = None
    refused: dict[str, Any] | None = None  # for the parent, when a running instance already has this id


@dataclass
class EpisodeCommit:
    """What one orchestrator episode changes, written in one transaction."""

    instance_id: str
    execution_id: str
    consumed: list[int]
    history: list[dict[str, Any]]
    status: str
    output: str | None
    custom_status: str | None
    progress: dict[str, Any]
    messages: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)  # (instance, event, due)
    work: list[tuple[int, str, str | None]] = field(default_factory=list)  # (task id, activity, input JSON)
    entity_ops: list[tuple[str, str, str, str | None, str]] = field(default_factory=list)
    entity_calls: list[str] = field(default_factory=list)  # request ids whose response comes back here
    children: list[NewInstance] = field(default_factory=list)
    new_execution: tuple[str, str | None] | None = None  # continue_as_new: (execution id, input JSON)


_COLUMNS = ("instance_id, name, execution_id, status, input, output, custom_status, created, updated, "
            "parent_instance, parent_task, progress")


def _instance(row: tuple[Any, ...]) -> Instance:
    return Instance(*row[:-1], progress=json.loads(row[-1]))


def get_instance(conn: sqlite3.Connection, instance_id: str) -> Instance | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM orch_instances WHERE instance_id = ?", (instance_id,)).fetchone()
    return _instance(row) if row else None


def list_instances(conn: sqlite3.Connection, *, statuses: list[str] | None = None, prefix: str | None = None,
                   created_from: float | None = None, created_to: float | None = None,
                   limit: int = 1000) -> list[Instance]:
    where: list[str] = ["1 = 1"]
    args: list[Any] = []
    if statuses:
        where.append(f"status IN ({','.join('?' * len(statuses))})")
        args += statuses
    if prefix:
        where.append("substr(instance_id, 1, ?) = ?")
        args += [len(prefix), prefix]
    if created_from is not None:
        where.append("created >= ?")
        args.append(created_from)
    if created_to is not None:
        where.append("created <= ?")
        args.append(created_to)
    rows = conn.execute(f"SELECT {_COLUMNS} FROM orch_instances WHERE {' AND '.join(where)} "
                        "ORDER BY created DESC, instance_id LIMIT ?", (*args, limit))
    return [_instance(r) for r in rows]


def history(conn: sqlite3.Connection, instance_id: str) -> list[dict[str, Any]]:
    return [json.loads(e) for (e,) in conn.execute(
        "SELECT event FROM orch_history WHERE instance_id = ? ORDER BY seq", (instance_id,))]


def create(conn: sqlite3.Connection, new: NewInstance, now: float, *, replace_finished: bool = True) -> None:
    """A new instance with its ExecutionStarted message; a finished one with that id is replaced, a running one
    is InstanceBusy."""
    existing = get_instance(conn, new.instance_id)
    if existing is not None:
        if existing.status not in FINISHED or not replace_finished:
            raise InstanceBusy(f"instance {new.instance_id!r} exists and is {existing.status}")
        purge(conn, new.instance_id)
    conn.execute(f"INSERT INTO orch_instances ({_COLUMNS}) VALUES (?, ?, ?, 'Pending', ?, NULL, NULL, ?, ?, ?, ?, ?)",
                 (new.instance_id, new.name, new.execution_id, new.input, now, now, new.parent_instance,
                  new.parent_task, json.dumps({})))
    send(conn, new.instance_id, new.started, now)


def send(conn: sqlite3.Connection, instance_id: str, event: dict[str, Any], due: float) -> None:
    conn.execute("INSERT INTO orch_inbox (instance_id, event, due) VALUES (?, ?, ?)",
                 (instance_id, json.dumps(event), due))


def send_to_running(conn: sqlite3.Connection, instance_id: str, event: dict[str, Any], now: float) -> None:
    """An external message (raised event, termination) for an instance that must exist and not have finished."""
    instance = get_instance(conn, instance_id)
    if instance is None:
        raise InstanceMissing(f"no orchestration instance {instance_id!r}")
    if instance.status in FINISHED:
        raise InstanceGone(f"instance {instance_id!r} is {instance.status}")
    send(conn, instance_id, event, now)


def due_instances(conn: sqlite3.Connection, now: float) -> tuple[list[str], float | None]:
    """Instances with a message due now, and when the next later message is due."""
    ids = [i for (i,) in conn.execute("SELECT DISTINCT instance_id FROM orch_inbox WHERE due <= ?", (now,))]
    row = conn.execute("SELECT MIN(due) FROM orch_inbox WHERE due > ?", (now,)).fetchone()
    return ids, row[0] if row else None


def load_episode(conn: sqlite3.Connection, instance_id: str, now: float
                 ) -> tuple[Instance | None, list[dict[str, Any]], list[Message]]:
    instance = get_instance(conn, instance_id)
    messages = [Message(s, json.loads(e)) for s, e in conn.execute(
        "SELECT seq, event FROM orch_inbox WHERE instance_id = ? AND due <= ? ORDER BY seq", (instance_id, now))]
    return instance, (history(conn, instance_id) if instance else []), messages


def drop_messages(conn: sqlite3.Connection, seqs: list[int]) -> None:
    conn.executemany("DELETE FROM orch_inbox WHERE seq = ?", [(s,) for s in seqs])


def commit_episode(conn: sqlite3.Connection, c: EpisodeCommit, now: float) -> None:
    current = conn.execute("SELECT execution_id FROM orch_instances WHERE instance_id = ?",
                           (c.instance_id,)).fetchone()
    if current is None or current[0] != c.execution_id:  # purged or restarted meanwhile: this episode is void
        raise InstanceMissing(f"instance {c.instance_id!r} changed while its episode ran")
    drop_messages(conn, c.consumed)
    if c.new_execution is not None:
        execution_id, new_input = c.new_execution
        conn.execute("DELETE FROM orch_history WHERE instance_id = ?", (c.instance_id,))
        conn.execute("DELETE FROM orch_work WHERE instance_id = ?", (c.instance_id,))
        conn.execute("UPDATE orch_instances SET execution_id = ?, input = ?, status = 'Running', output = NULL, "
                     "custom_status = ?, updated = ?, progress = '{}' WHERE instance_id = ?",
                     (execution_id, new_input, c.custom_status, now, c.instance_id))
    else:
        start = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM orch_history WHERE instance_id = ?",
                             (c.instance_id,)).fetchone()[0]
        conn.executemany("INSERT INTO orch_history (instance_id, seq, event) VALUES (?, ?, ?)",
                         [(c.instance_id, start + i, json.dumps(e)) for i, e in enumerate(c.history)])
        conn.execute("UPDATE orch_instances SET status = ?, output = ?, custom_status = ?, updated = ?, "
                     "progress = ? WHERE instance_id = ?",
                     (c.status, c.output, c.custom_status, now, json.dumps(c.progress), c.instance_id))
        if c.status in FINISHED:
            conn.execute("DELETE FROM orch_work WHERE instance_id = ?", (c.instance_id,))
    for target, event, due in c.messages:
        send(conn, target, event, due)
    if c.new_execution is None:  # activities of an execution that continued as new would answer nobody
        conn.executemany("INSERT INTO orch_work (instance_id, execution_id, task_id, name, input) "
                         "VALUES (?, ?, ?, ?, ?)", [(c.instance_id, c.execution_id, t, n, i) for t, n, i in c.work])
    if c.entity_ops:
        conn.executemany("INSERT INTO entity_queue (name, key, operation, input, request_id, enqueued) "
                         "VALUES (?, ?, ?, ?, ?, ?)", [(*op, now) for op in c.entity_ops])
    conn.executemany("INSERT INTO orch_entity_calls (request_id, instance_id, execution_id) VALUES (?, ?, ?)",
                     [(r, c.instance_id, c.execution_id) for r in c.entity_calls])
    for child in c.children:
        try:
            create(conn, child, now)
        except InstanceBusy:
            if child.refused is not None:
                send(conn, c.instance_id, child.refused, now)


def pending_work(conn: sqlite3.Connection, exclude: set[int], limit: int) -> list[WorkItem]:
    rows = conn.execute("SELECT seq, instance_id, execution_id, task_id, name, input FROM orch_work ORDER BY seq "
                        "LIMIT ?", (limit + len(exclude),))
    return [WorkItem(*r) for r in rows if r[0] not in exclude][:limit]


def complete_work(conn: sqlite3.Connection, item: WorkItem, event: dict[str, Any], now: float) -> bool:
    """Remove the work item and hand its result to its instance, in one transaction; False if the instance has
    finished, restarted or gone (the result is dropped, as the extension drops it)."""
    conn.execute("DELETE FROM orch_work WHERE seq = ?", (item.seq,))
    row = conn.execute("SELECT execution_id, status FROM orch_instances WHERE instance_id = ?",
                       (item.instance_id,)).fetchone()
    if row is None or row[0] != item.execution_id or row[1] in FINISHED:
        return False
    send(conn, item.instance_id, event, now)
    return True


def entity_replies(conn: sqlite3.Connection, replies: list[tuple[str, dict[str, Any]]], now: float) -> list[str]:
    """Responses of entity operations that orchestrators called, sent to them as EventRaised named by the request
    id; returns the instances to wake. Runs inside the entity batch's own commit."""
    woken: list[str] = []
    for request_id, event in replies:
        row = conn.execute("SELECT instance_id FROM orch_entity_calls WHERE request_id = ?", (request_id,)).fetchone()
        if row is None:
            continue
        conn.execute("DELETE FROM orch_entity_calls WHERE request_id = ?", (request_id,))
        send(conn, row[0], event, now)
        woken.append(row[0])
    return woken


def purge(conn: sqlite3.Connection, instance_id: str) -> int:
    deleted = conn.execute("DELETE FROM orch_instances WHERE instance_id = ?", (instance_id,)).rowcount
    for table in ("orch_history", "orch_inbox", "orch_work", "orch_entity_calls"):
        conn.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))
    return deleted


def purge_finished(conn: sqlite3.Connection, instance_id: str) -> int:
    instance = get_instance(conn, instance_id)
    if instance is None:
        return 0
    if instance.status not in FINISHED:
        raise InstanceBusy(f"instance {instance_id!r} is {instance.status}; terminate it before purging")
    return purge(conn, instance_id)
