"""Durable entities on SQLite: the signal queue, one batch at a time per entity key, atomic commits.

The entity function is the app's own (`Entity.create` wraps it): it takes the Durable batch context as JSON
(`{"self": {"name", "key"}, "exists", "state", "batch": [{"name", "input", ...}]}`) and returns
`{"entityExists", "entityState", "results", "signals"}`. A signal is queued in SQLite before the webhook
answers 202; a batch's new state, the removal of its operations and its outgoing signals commit in one
transaction. A crash before that commit runs the batch again from the old state; after it, never again.

With several instances over one data folder (`aos serve --instances N`), an instance runs only the entity keys
whose partition it leases (services/devhost/leases.py), polls the shared queue for signals other instances
accepted for them, and commits a batch only while it still holds the partition.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from aos_core.errors import NotFoundError
from services.devhost import host_db
from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.labels import new_label
from services.devhost.leases import LeaseLost, Leases, partition_of
from services.sqlite import SqliteDatabase

log = logging.getLogger("aos.devhost.entities")
_RETRY_MAX = 30.0


class EntityHost:
    def __init__(self, functions: list[FunctionSpec], db: SqliteDatabase, invoker: Invoker, *,
                 batch_size: int = 64, max_parallel: int = 32, leases: Leases | None = None,
                 poll_interval: float = 0.05) -> None:
        # Durable entity names are case-insensitive (the extension lower-cases them).
        self.functions = {str(f.trigger.get("entityName") or f.name).lower(): f
                          for f in functions if f.trigger_type == "entityTrigger"}
        self._db = db
        self._invoker = invoker
        self._batch_size = batch_size
        self._slots = asyncio.Semaphore(max_parallel)
        self._running: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._leases = leases
        self._poll_interval = poll_interval
        self._poller: asyncio.Task[None] | None = None
        self.processed = 0
        # Orchestrators that called an operation get its response in the batch's own commit (orchestrations.py).
        self.replies: Callable[[sqlite3.Connection, list[host_db.QueuedOperation], list[dict[str, Any]]],
                               list[str]] | None = None
        self.on_replied: Callable[[list[str]], None] | None = None

    def function_for(self, name: str) -> FunctionSpec:
        spec = self.functions.get(name.lower())
        if spec is None:
            raise NotFoundError(f"no entity function named {name!r} (entities: {', '.join(self.functions) or 'none'})")
        return spec

    async def signal(self, name: str, key: str, operation: str, input_json: str | None) -> str:
        """Queue one operation durably and start its entity's worker; returns the request id."""
        self.function_for(name)
        request_id = new_label()
        row = (name.lower(), key, operation, input_json, request_id)
        await self._db.write(lambda c: host_db.enqueue(c, [row], time.time()))
        self._schedule(name.lower(), key)
        return request_id

    async def read_state(self, name: str, key: str) -> str | None:
        """The entity's state as the JSON text the entity function stored, or None if it does not exist."""
        return await self._db.read(lambda c: host_db.read_state(c, name.lower(), key))

    async def start(self) -> None:
        """Resume entities with queued operations (signals accepted before a crash or a stop)."""
        await self.resume()
        if self._leases is not None:  # other instances queue signals for the keys this one runs
            self._poller = asyncio.create_task(self._poll(), name="entity-poll")

    async def resume(self) -> None:
        """Start a worker for every entity with queued operations that this instance runs."""
        for name, key in await self._db.read(host_db.pending_keys):
            if name in self.functions:
                self._schedule(name, key)

    def busy(self, partition: int) -> bool:
        """Whether a batch of an entity in `partition` may be running here (its lease cannot be released yet)."""
        count = self._leases.partitions if self._leases else 1
        return any(partition_of(name, key, count) == partition for name, key in self._running)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                await self.resume()
            except asyncio.CancelledError:
                raise
            except Exception:  # a storage fault: the next poll tries again
                log.exception("polling the entity queue failed")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def idle(self) -> bool:
        return not self._running

    def wake(self, keys: list[tuple[str, str]]) -> None:
        """Run entities whose operations another commit queued (an orchestrator's calls and signals)."""
        for name, key in keys:
            if name in self.functions:
                self._schedule(name, key)

    def _schedule(self, name: str, key: str) -> None:
        ident = (name, key)
        if self._leases is not None and not self._leases.owns(name, key):
            return  # another instance runs it (it polls the queue)
        if ident in self._running:
            self._dirty.add(ident)  # the running worker looks again before it exits
            return
        self._running[ident] = asyncio.create_task(self._drain(name, key), name=f"entity:{name}/{key}")

    async def _drain(self, name: str, key: str) -> None:
        ident = (name, key)
        delay = 0.5
        try:
            while True:
                self._dirty.discard(ident)
                if self._leases is not None and not self._leases.owns(name, key):
                    return  # the partition is moving to another instance: start nothing more here
                exists, state, ops = await self._db.read(
                    lambda c: host_db.load_batch(c, name, key, self._batch_size))
                if not ops:
                    if ident in self._dirty:
                        continue
                    return
                try:
                    async with self._slots:
                        await self._run_batch(name, key, exists, state, ops)
                    delay = 0.5
                except asyncio.CancelledError:
                    raise
                except LeaseLost as exc:
                    log.warning("entity %s/%s: batch of %d not committed: %s", name, key, len(ops), exc)
                    return
                except Exception:
                    log.exception("entity %s/%s: batch of %d failed; retrying in %.1fs", name, key, len(ops), delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RETRY_MAX)
        finally:
            self._running.pop(ident, None)

    async def _run_batch(self, name: str, key: str, exists: bool, state: str | None,
                         ops: list[host_db.QueuedOperation]) -> None:
        spec = self.functions[name]
        context = json.dumps({
            "self": {"name": name, "key": key}, "exists": exists, "state": state,
            "batch": [{"name": op.operation, "input": op.input if op.input is not None else "null", "signal": True,
                       "id": op.request_id} for op in ops]})
        raw = await self._invoker.invoke(spec, {spec.trigger["name"]: context}, quiet=True)
        out = json.loads(raw) if isinstance(raw, str | bytes) else raw
        errors = [f"{op.operation}: {json.loads(r['result']) if r.get('result') else ''}"
                  for op, r in zip(ops, out.get("results", []), strict=False) if r.get("isError")]
        for error in errors:
            log.warning("entity %s/%s operation failed: %s", name, key, error)
        signals = [_signal_row(s) for s in out.get("signals", []) or []]
        new_exists, new_state = bool(out.get("entityExists")), out.get("entityState")
        now = time.time()
        last = ops[-1].seq
        results = out.get("results", []) or []

        def commit(c: sqlite3.Connection) -> list[str]:
            if self._leases is not None:
                self._leases.fence(c, name, key)  # LeaseLost: the new owner runs the batch again
            host_db.commit_batch(c, name, key, last, len(ops), new_exists, new_state, errors[-1] if errors else None,
                                 signals, now)
            return self.replies(c, ops, results) if self.replies is not None else []

        woken = await self._db.write(commit)
        if woken and self.on_replied is not None:
            self.on_replied(woken)
        self.processed += len(ops)
        for target_name, target_key, *_ in signals:
            if target_name in self.functions:
                self._schedule(target_name, target_key)


def _signal_row(signal: Any) -> tuple[str, str, str, str | None, str]:
    # The Python SDK sends none today; accept the extension's shape ({"target": {"name", "key"}, "name", "input"}).
    target = signal.get("target", {})
    input_ = signal.get("input")
    return (str(target.get("name", "")).lower(), str(target.get("key", "")), str(signal.get("name", "")),
            input_ if isinstance(input_, str) or input_ is None else json.dumps(input_), new_label())
