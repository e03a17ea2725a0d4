"""Leases in the host's SQLite file: which instance runs which entity partition and which timer.

On Azure, instances share one task hub; the Durable Task partition manager gives each instance a set of
partitions by leases, so an entity key runs on at most one instance at a time, and the Functions host runs a
timer on one instance by a singleton lock. This is the same mechanism for the local host's instances, which
share one data folder:

- A lease has an owner and an expiry. Its owner renews it every `ttl / 3`; anyone may take it once it has
  expired, or at once when its owner's process is gone (the instances of a local host share one machine).
- Each live instance aims at `ceil(partitions / live instances)` partitions. Nobody takes a lease another
  live instance holds: an instance above its share stops starting work in the extra partitions, and releases
  each once nothing runs in it, so two instances never run one entity key at the same time.
- An instance uses a lease only while it has at least `ttl / 3` left, and an entity batch commits only if its
  partition's lease is still its own (`holds`, checked in the commit's transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Callable
from typing import Any

from services.sqlite import SqliteDatabase

log = logging.getLogger("aos.devhost.leases")

SCHEMA = """
CREATE TABLE IF NOT EXISTS host_leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, pid INTEGER NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS host_instances (
    id TEXT PRIMARY KEY, pid INTEGER NOT NULL, url TEXT NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL);
"""


class LeaseLost(Exception):
    """The lease a piece of work ran under is no longer this instance's: its outcome must not commit."""


def partition_of(name: str, key: str, partitions: int) -> int:
    """The partition of an entity (a stable hash of its id, the same in every process)."""
    return zlib.crc32(f"@{name.lower()}@{key}".encode()) % partitions


def partition_lease(partition: int) -> str:
    return f"partition:{partition}"


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not yet reaped, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    return True


# --- on the database thread, inside one transaction --------------------------------------------------------

def take(conn: sqlite3.Connection, name: str, owner: str, pid: int, now: float, ttl: float) -> bool:
    """Take or renew lease `name` for `owner` if it is free, expired, ours, or its owner's process is gone."""
    row = conn.execute("SELECT owner, pid, expires FROM host_leases WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] != owner and row[2] > now and process_alive(row[1]):
        return False
    conn.execute("INSERT INTO host_leases (name, owner, pid, expires) VALUES (?, ?, ?, ?) ON CONFLICT (name) "
                 "DO UPDATE SET owner = excluded.owner, pid = excluded.pid, expires = excluded.expires",
                 (name, owner, pid, now + ttl))
    return True


def holds(conn: sqlite3.Connection, name: str, owner: str, now: float) -> bool:
    row = conn.execute("SELECT owner, expires FROM host_leases WHERE name = ?", (name,)).fetchone()
    return row is not None and row[0] == owner and row[1] > now


def release(conn: sqlite3.Connection, names: list[str], owner: str) -> None:
    conn.executemany("DELETE FROM host_leases WHERE name = ? AND owner = ?", [(n, owner) for n in names])


def live_instances(conn: sqlite3.Connection, now: float, ttl: float) -> list[tuple[str, int]]:
    rows = conn.execute("SELECT id, pid FROM host_instances WHERE heartbeat > ?", (now - ttl,)).fetchall()
    return [(i, p) for i, p in rows if process_alive(p)]


def list_instances(conn: sqlite3.Connection, now: float, ttl: float) -> list[dict[str, Any]]:
    """Every instance seen within three lease times, with the leases it holds and whether it is live."""
    leases: dict[str, list[str]] = {}
    for name, owner in conn.execute("SELECT name, owner FROM host_leases WHERE expires > ? ORDER BY name", (now,)):
        leases.setdefault(owner, []).append(name)
    rows = conn.execute("SELECT id, pid, url, started, heartbeat FROM host_instances WHERE heartbeat > ? "
                        "ORDER BY started", (now - 3 * ttl,)).fetchall()
    out = []
    for ident, pid, url, started, heartbeat in rows:
        held = leases.get(ident, [])
        out.append({"id": ident, "pid": pid, "url": url, "started": started, "heartbeat": heartbeat,
                    "live": heartbeat > now - ttl and process_alive(pid),
                    "partitions": sorted(int(n.split(":", 1)[1]) for n in held if n.startswith("partition:")),
                    "singletons": [n for n in held if not n.startswith("partition:")]})
    return out


class Leases:
    """One instance's leases: a round every `ttl / 3` renews them, beats its heartbeat, takes its share."""

    def __init__(self, db: SqliteDatabase, *, instance_id: str, url: str, partitions: int = 4, ttl: float = 10.0,
                 busy: Callable[[int], bool] = lambda partition: False,
                 on_gain: Callable[[set[int]], None] = lambda partitions: None) -> None:
        self.instance_id = instance_id
        self.partitions = partitions
        self.ttl = ttl
        self._db = db
        self._url = url
        self._pid = os.getpid()
        self._started = time.time()
        self._busy = busy
        self._on_gain = on_gain
        self._expires: dict[str, float] = {}  # lease name -> when it expires, as of our last renewal
        self._draining: set[int] = set()  # partitions above our share: no new work, released once idle
        self._singletons: set[str] = set()  # singleton leases wanted (timers)
        self._task: asyncio.Task[None] | None = None
        self._renewed = asyncio.Event()  # set after every round

    # --- what the runners ask ------------------------------------------------------------------------------

    def usable(self, name: str) -> bool:
        """Whether work may start under lease `name` now: ours, with a third of its time left at least."""
        expires = self._expires.get(name)
        return expires is not None and expires - time.time() > self.ttl / 3

    def owns(self, entity: str, key: str) -> bool:
        partition = partition_of(entity, key, self.partitions)
        return partition not in self._draining and self.usable(partition_lease(partition))

    def fence(self, conn: sqlite3.Connection, entity: str, key: str) -> None:
        """Raise LeaseLost unless the entity's partition is still ours (call inside the commit's transaction)."""
        name = partition_lease(partition_of(entity, key, self.partitions))
        if not holds(conn, name, self.instance_id, time.time()):
            raise LeaseLost(f"{self.instance_id} no longer holds {name}")

    def owned_partitions(self) -> list[int]:
        return sorted(int(n.split(":", 1)[1]) for n in self._expires if n.startswith("partition:"))

    def want(self, singleton: str) -> None:
        self._singletons.add(singleton)

    async def wait_for(self, singleton: str) -> None:
        """Return once singleton lease `singleton` is ours (a timer waits here on every instance but one)."""
        self.want(singleton)
        while not self.usable(singleton):
            self._renewed.clear()
            await self._renewed.wait()

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        await self.round()
        self._task = asyncio.create_task(self._run(), name="leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        names, owner = list(self._expires), self.instance_id
        self._expires.clear()

        def leave(conn: sqlite3.Connection) -> None:
            release(conn, names, owner)
            conn.execute("DELETE FROM host_instances WHERE id = ?", (owner,))

        with contextlib.suppress(Exception):  # a stop on a failing disk: the leases expire by themselves
            await self._db.write(leave)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage fault: our leases run out, and we stop using them in time
                log.exception("lease round of %s failed", self.instance_id)

    async def round(self) -> None:
        """Beat, renew what we hold, release idle partitions above our share, take free ones up to it."""
        idle = {p for p in self._draining if not self._busy(p)}
        before = set(self.owned_partitions())
        self._expires, extra = await self._db.write(lambda conn: self._round(conn, idle))
        self._draining = (self._draining - idle) | extra
        self._renewed.set()
        gained = set(self.owned_partitions()) - before
        if gained:
            self._on_gain(gained)

    def _round(self, conn: sqlite3.Connection, idle: set[int]) -> tuple[dict[str, float], set[int]]:
        now, me = time.time(), self.instance_id
        conn.execute("INSERT INTO host_instances (id, pid, url, started, heartbeat) VALUES (?, ?, ?, ?, ?) "
                     "ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat",
                     (me, self._pid, self._url, self._started, now))
        release(conn, [partition_lease(p) for p in idle], me)
        live = max(1, len(live_instances(conn, now, self.ttl)))
        share = math.ceil(self.partitions / live)
        held = [p for p in range(self.partitions) if holds(conn, partition_lease(p), me, now)]
        for p in held:
            take(conn, partition_lease(p), me, self._pid, now, self.ttl)
        for p in range(self.partitions):
            if len(held) >= share:
                break
            if p not in held and take(conn, partition_lease(p), me, self._pid, now, self.ttl):
                held.append(p)
        for name in self._singletons:
            take(conn, name, me, self._pid, now, self.ttl)
        expires = {name: at for name, at in conn.execute("SELECT name, expires FROM host_leases WHERE owner = ?",
                                                         (me,))}
        return expires, set(sorted(held)[share:])
