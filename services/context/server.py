"""ContextMCPServer: an agent's working memory, stored between invocations with ETag concurrency.

Layout in the StateStore (one agent):
  context/<agent_id>                    {"agent_id", "version", "state", "applied", "memory_count", "updated_at"}
  context/<agent_id>/history/<version>  the state as of that version (the last `history_limit` kept)
  context/<agent_id>/memory/<seq>       appended memory entries

`applied` holds the ids of the last events whose effects are in `state`, written in the same document, so
a redelivered event is recognised and never applied twice. The MCP exposure of this store is added on
top of this class; this module is the storage-backed core.
"""

from __future__ import annotations

import copy
import json
from collections import deque
from datetime import UTC, datetime
from typing import Any

from aos_core.errors import ConflictError, NotFoundError
from aos_core.events import validate_id
from aos_core.ports import JSON, Clock, StateStore

_PREFIX = "context/"


def merge_patch(target: JSON, patch: JSON) -> JSON:
    """RFC 7386 JSON merge patch: objects merge recursively, `null` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class ContextMCPServer:
    """One agent's context document. Not safe for concurrent use by two tasks: the agent's mailbox serialises."""

    def __init__(
        self,
        agent_id: str,
        store: StateStore | None = None,
        *,
        history_limit: int = 10,
        dedupe_window: int = 128,
        clock: Clock | None = None,
    ) -> None:
        self.agent_id = validate_id(agent_id, "agent id")
        self._store = store
        self._history_limit = history_limit
        self._clock = clock
        self._key = f"{_PREFIX}{agent_id}"
        self.state: dict[str, Any] = {}
        self.version = 0
        self._etag: str | None = None
        self._applied: deque[str] = deque(maxlen=dedupe_window)
        self._applied_set: set[str] = set()
        self._memory_count = 0
        self._loaded = False
        self.dirty = False

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError("ContextMCPServer.initialize() must run before use")
        return self._store

    async def initialize(self) -> None:
        """Without a store given: the store of the kernel initialized in this context, else the one the settings
        name (a server used without a kernel). Then load the stored context."""
        if self._store is None:
            from aos_core.config import AOSConfig
            from aos_core.runtime import build_state_store, context_store

            self._store = context_store() or await build_state_store(AOSConfig())
        await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Read the stored document again (after a ConflictError, say) and return the state."""
        doc = await self.store.get(self._key)
        value: dict[str, Any] = doc.value if doc else {}
        self.state = value.get("state") or {}
        self.version = int(value.get("version", 0))
        self._etag = doc.etag if doc else None
        self._applied.clear()
        self._applied.extend(value.get("applied", []))
        self._applied_set = set(self._applied)
        self._memory_count = int(value.get("memory_count", 0))
        self._loaded = True
        self.dirty = False
        return self.state

    # --- the API agents use ------------------------------------------------------------------------

    async def load_state(self) -> dict[str, Any]:
        if not self._loaded:
            await self.reload()
        return self.state

    @property
    def last_applied(self) -> str | None:
        """The id of the last event whose effects are in `state`."""
        return self._applied[-1] if self._applied else None

    def has_applied(self, event_id: str) -> bool:
        return event_id in self._applied_set

    def mark_applied(self, event_id: str) -> None:
        """Remember an event as applied without writing (write-behind mode); `dirty` says a save is owed."""
        if event_id in self._applied_set:
            return
        if self._applied.maxlen and len(self._applied) == self._applied.maxlen:
            self._applied_set.discard(self._applied[0])
        self._applied.append(event_id)
        self._applied_set.add(event_id)
        self.dirty = True

    async def save_state(
        self, state: dict[str, Any] | None = None, *, applied_event_id: str | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Write `state` (default: the current one) as the next version and return it.

        `applied_event_id` is recorded in the same write. ConflictError if another writer got there first
        (or `expected_version` is not the stored version); the caller reloads and retries.
        """
        if not self._loaded:
            await self.reload()
        if expected_version is not None and expected_version != self.version:
            raise ConflictError(self._key, f"expected version {expected_version}, stored version is {self.version}")
        new_state = self.state if state is None else state
        if not isinstance(new_state, dict):
            raise ValueError("context state must be a JSON object")
        applied = list(self._applied)
        if applied_event_id is not None and applied_event_id not in self._applied_set:
            applied.append(applied_event_id)
            applied = applied[-self._applied.maxlen:] if self._applied.maxlen else applied
        version = self.version + 1
        now = self._now().isoformat()
        document = {
            "agent_id": self.agent_id, "version": version, "state": new_state, "applied": applied,
            "memory_count": self._memory_count, "updated_at": now,
        }
        if self._history_limit > 0:
            # History first: if we crash before the main write, the orphan is overwritten by the next save.
            await self.store.put(self._history_key(version), {"version": version, "state": new_state, "at": now,
                                                              "event_id": applied_event_id})
        if self._etag is None:
            self._etag = await self.store.put(self._key, document, if_none_match=True)
        else:
            self._etag = await self.store.put(self._key, document, if_match=self._etag)
        self.state, self.version = new_state, version
        if applied_event_id is not None:
            self.mark_applied(applied_event_id)
        self.dirty = False
        if self._history_limit > 0 and version > self._history_limit:
            await self.store.delete(self._history_key(version - self._history_limit))
        return version

    async def replace(self, state: dict[str, Any], *, expected_version: int | None = None) -> int:
        return await self.save_state(state, expected_version=expected_version)

    async def patch(self, patch: dict[str, Any], *, expected_version: int | None = None) -> int:
        """Apply a JSON merge patch to the state."""
        if not self._loaded:
            await self.reload()
        return await self.save_state(merge_patch(self.state, patch), expected_version=expected_version)

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Stored past versions, oldest first."""
        docs = await self.store.list(f"{self._key}/history/", limit=limit)
        return [d.value for d in docs]

    async def get_version(self, version: int) -> dict[str, Any]:
        doc = await self.store.get(self._history_key(version))
        if doc is None:
            raise NotFoundError(f"{self.agent_id}: version {version} is not in the history")
        return doc.value

    async def append_memory(self, entry: JSON) -> int:
        """Append an entry to the agent's long-term memory and return its sequence number."""
        if not self._loaded:
            await self.reload()
        seq = self._memory_count + 1
        await self.store.put(f"{self._key}/memory/{seq:012d}", {"seq": seq, "at": self._now().isoformat(),
                                                                 "entry": entry})
        self._memory_count = seq
        await self.save_state()
        return seq

    async def memory(self, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        start = f"{self._key}/memory/{after:012d}" if after else None
        docs = await self.store.list(f"{self._key}/memory/", start_after=start, limit=limit)
        return [d.value for d in docs]

    async def search_memory(self, query: str, *, limit: int = 20, scan: int = 10_000) -> list[dict[str, Any]]:
        """Memory entries whose JSON text contains `query` (case-insensitive), newest first.

        A linear scan of the last `scan` entries: memory is per agent and modest; an index can come later.
        """
        if not self._loaded:
            await self.reload()
        needle = query.casefold()
        after = max(0, self._memory_count - scan)
        found: list[dict[str, Any]] = []
        while True:
            page = await self.memory(after=after, limit=500)
            for item in page:
                if needle in json.dumps(item.get("entry"), ensure_ascii=False).casefold():
                    found.append(item)
            if len(page) < 500:
                break
            after = int(page[-1]["seq"])
        return found[::-1][:limit]

    async def delete(self) -> None:
        """Remove the context and everything under it (when an agent is deleted for good)."""
        while docs := await self.store.list(f"{self._key}/", limit=500):
            for doc in docs:
                await self.store.delete(doc.key)
        await self.store.delete(self._key)
        await self.reload()

    def snapshot(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "version": self.version, "state": self.state,
                "memory_count": self._memory_count, "applied": list(self._applied)}

    def _history_key(self, version: int) -> str:
        return f"{self._key}/history/{version:012d}"

    def _now(self) -> datetime:
        return self._clock.now() if self._clock else datetime.now(UTC)
