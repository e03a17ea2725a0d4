"""ContextMCPServer: an agent's working memory, stored between invocations with ETag concurrency.

Layout in the StateStore (one agent):
  context/<agent_id>                         the head: {"agent_id", "layout": 2, "version", "applied",
                                             "committed", "memory_count", "updated_at", "bases", "log"}
  context/<agent_id>/snapshots/<version>-<n> the whole state as of a base version, with the log that led to it
  context/<agent_id>/memory/<seq>            appended memory entries

A commit writes the head once, with an ETag precondition: the new version, the event ids it applies (one, or
several handled together) in `applied` and `committed`, and the commit's delta appended to `log` (the paths
the agent changed, `services.context.tracked`). The state is the last base's snapshot with the log replayed,
so an event costs what it changed, not the size of the state. Once
the log outgrows a share of the snapshot (`_log_limit`), the commit first writes a new snapshot (create-only,
under a name of its own) and starts an empty log: whole-state writes are amortised over many events.

The last `history_limit` versions stay readable (`get_version`): from the newest kept base at or before them,
with the deltas after it (each snapshot keeps the log that led to it). Older snapshots are deleted once no
version in that window needs them.

`applied` holds the ids of the last events whose effects are in the state, written in the same head, so a
redelivered event is recognised and never applied twice; `committed` names those of the last commit, whose
result documents the kernel settles after a crash.

`outbox` (absent when empty) holds what the agent's handlings sent (messages, workflows) that the kernel has not
handed on yet, written in the same commit as the change that sent it, so a crash after the commit loses no
message (a transactional outbox). Each entry has an `id` its receiver dedupes by; once handed on, it is left
out of the next commit.

The MCP exposure of this store is added on top of this class; this module is the storage-backed core.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import secrets
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aos_core.errors import ConflictError, NotFoundError, StorageUnavailableError
from aos_core.events import validate_id
from aos_core.ports import JSON, Clock, StateStore
from services.context.tracked import Changes, TrackedDict, apply_ops, plain, track
from services.storage.keys import encode_value, with_encoded_list

log = logging.getLogger("aos.context")
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


_LAYOUT = 2
_MIN_LOG_BYTES = 4096  # a log below this is never compacted: small states are snapshotted rarely
_READ_ATTEMPTS = 5  # head-then-snapshot reads that may each race a commit dropping that snapshot


def _log_limit(snapshot_bytes: int) -> int:
    # A commit rewrites the log (half the limit on average) and a snapshot costs `snapshot_bytes` once per limit's
    # worth of deltas: a limit near sqrt(snapshot x 1024) keeps both small next to one event's own work.
    return max(_MIN_LOG_BYTES, math.isqrt(snapshot_bytes * 1024))


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
        self._changes = Changes()
        self._state: TrackedDict = track({}, self._changes)
        self.version = 0
        self._etag: str | None = None
        self._applied: deque[str] = deque(maxlen=dedupe_window)
        self._applied_set: set[str] = set()
        self._last_commit: list[str] = []  # the events the last commit applied
        self._outbox: list[dict[str, Any]] = []  # outgoing entries not handed on yet, in the order sent
        self._memory_count = 0
        self._bases: list[list[Any]] = []  # [version, snapshot key or None (the empty state), snapshot bytes]
        self._log: list[dict[str, Any]] = []  # the deltas after the last base
        self._log_texts: list[str] = []  # their JSON texts, kept so a commit does not encode the log again
        self._log_bytes = 0
        self._updated_at: str | None = None
        self._loaded = False
        self.dirty = False

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError("ContextMCPServer.initialize() must run before use")
        return self._store

    @property
    def state(self) -> dict[str, Any]:
        return self._state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        """Replace the whole state (the next commit writes all of it)."""
        if not isinstance(value, dict):
            raise ValueError("context state must be a JSON object")
        self._state = track(value, self._changes)
        self._changes.mark(())

    async def initialize(self) -> None:
        """Without a store given: the store of the kernel initialized in this context, else the one the settings
        name (a server used without a kernel). Then load the stored context."""
        if self._store is None:
            from aos_core.config import AOSConfig
            from aos_core.runtime import build_state_store, context_store

            self._store = context_store() or await build_state_store(AOSConfig())
        await self.reload()

    async def reload(self) -> dict[str, Any]:
        """Read the stored context again (after a ConflictError, say) and return the state."""
        for _ in range(_READ_ATTEMPTS):
            doc = await self.store.get(self._key)
            value: dict[str, Any] = doc.value if doc else {}
            if doc is not None and "layout" in value and value["layout"] != _LAYOUT:
                # A newer release wrote it (during a rolling deployment or after a rollback, say). Read as
                # something older, the state would look empty and the next commit would write that over it.
                raise StorageUnavailableError(
                    f"context {self.agent_id} has layout {value['layout']!r}, which this release cannot read (it "
                    f"reads layout {_LAYOUT} and earlier); run the release that wrote it")
            if doc is not None and "layout" not in value:  # an earlier release's document: read below as it is
                break
            try:
                state, _ = await self._base_state(value.get("bases", [[0, None, 0]])[-1])
                break
            except NotFoundError:  # a commit elsewhere snapshotted and dropped it since: read the new head
                continue
        else:
            raise ConflictError(self._key, f"the context changed under {_READ_ATTEMPTS} reads in a row; try again")
        self._changes.clear()
        if doc is None or value.get("layout") == _LAYOUT:
            self._bases = [list(b) for b in value.get("bases", [[0, None, 0]])]
            self._log = list(value.get("log", []))
            self._log_texts = [encode_value(delta) for delta in self._log]
            self._log_bytes = int(value.get("log_bytes", 0))
            self._state = track(apply_ops(state, _ops(self._log)), self._changes)
        else:  # written by an earlier release: the state is in the document; the next commit snapshots it
            self._bases, self._log, self._log_texts, self._log_bytes = [], [], [], 0
            self._state = track(value.get("state") or {}, self._changes)
        self.version = int(value.get("version", 0))
        self._etag = doc.etag if doc else None
        self._applied.clear()
        self._applied.extend(value.get("applied", []))
        self._applied_set = set(self._applied)
        self._last_commit = list(value.get("committed", []))
        self._outbox = list(value.get("outbox", []))
        self._memory_count = int(value.get("memory_count", 0))
        self._updated_at = value.get("updated_at")
        self._loaded = True
        self.dirty = False
        return self._state

    # --- the API agents use ------------------------------------------------------------------------

    async def load_state(self) -> dict[str, Any]:
        if not self._loaded:
            await self.reload()
        return self._state

    @property
    def last_commit_applied(self) -> list[str]:
        """The ids of the events whose effects the last commit wrote (several when a batch was committed at once);
        the events a crash right after that commit may have left without their result documents."""
        if self._last_commit:
            return list(self._last_commit)
        return [self._applied[-1]] if self._applied else []

    def has_applied(self, event_id: str) -> bool:
        return event_id in self._applied_set

    def stage_outbox(self, entries: Sequence[dict[str, Any]]) -> None:
        """Add what a handling sends (JSON objects, each with an `id`) to the outbox the next commit writes."""
        if entries:
            self._outbox.extend(entries)
            self.dirty = True

    def unsent(self) -> list[dict[str, Any]]:
        """The outbox entries not yet handed on (committed ones, and staged ones the next commit writes)."""
        return list(self._outbox)

    def mark_sent(self, entry_id: str) -> None:
        """Entry `entry_id` has been handed on (its receiver has it): the next commit leaves it out."""
        self._outbox = [entry for entry in self._outbox if entry["id"] != entry_id]

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
        applied_event_ids: Sequence[str] = (), expected_version: int | None = None,
    ) -> int:
        """Commit the state (`state`, or the current one with its changes) as the next version and return it.

        `applied_event_id` (or `applied_event_ids`, events applied together, at most `dedupe_window` of them) is
        recorded in the same write. ConflictError if another writer got there first
        (or `expected_version` is not the stored version); the caller reloads and retries.
        """
        if not self._loaded:
            await self.reload()
        self._check_version(expected_version)
        if state is not None and state is not self._state:
            self.state = state
        ids = [applied_event_id] if applied_event_id is not None else list(applied_event_ids)
        if self._applied.maxlen and len(ids) > self._applied.maxlen:
            raise ValueError(f"{len(ids)} events in one commit; at most {self._applied.maxlen} (the dedupe window)")
        applied = list(self._applied)
        applied.extend(i for i in ids if i not in self._applied_set)
        applied = applied[-self._applied.maxlen:] if self._applied.maxlen else applied
        version = self.version + 1
        now = self._now().isoformat()
        delta: dict[str, Any] = {"version": version, "at": now, "event_id": ids[-1] if ids else None,
                                 "ops": self._changes.delta(self._state)}
        if len(ids) > 1:
            delta["event_ids"] = ids
        delta_text = encode_value(delta)
        logged, texts = [*self._log, delta], [*self._log_texts, delta_text]
        log_bytes = self._log_bytes + len(delta_text)
        bases, snapshot_key = self._bases, None
        if not bases or log_bytes > _log_limit(bases[-1][2]):
            snapshot_key = f"{self._key}/snapshots/{version:012d}-{secrets.token_hex(4)}"
            snapshot = with_encoded_list({"version": version, "at": now, "state": plain(self._state)}, "log", logged,
                                         texts)  # the log's deltas are encoded already, as for the head
            await self.store.put(snapshot_key, snapshot, if_none_match=True)
            size = (bases[-1][2] if bases else 0) + log_bytes  # an estimate: only the next log limit uses it
            bases, logged, texts, log_bytes = [*bases, [version, snapshot_key, size]], [], [], 0
        bases, dropped = self._prune(bases, version)
        outbox = self.unsent()
        fields = {"agent_id": self.agent_id, "layout": _LAYOUT, "version": version, "applied": applied,
                  "committed": ids, "memory_count": self._memory_count, "updated_at": now, "bases": bases,
                  "log_bytes": log_bytes}
        if outbox:  # a field an earlier release ignores (and drops): it then behaves as it always did
            fields["outbox"] = outbox
        head = with_encoded_list(fields, "log", logged, texts)  # the deltas' texts kept from their commits
        try:
            if self._etag is None:
                etag = await self.store.put(self._key, head, if_none_match=True)
            else:
                etag = await self.store.put(self._key, head, if_match=self._etag)
        except ConflictError:
            if snapshot_key is not None:  # nobody names it: remove it rather than leave it behind
                await self._discard(snapshot_key)
            raise
        self._etag, self.version, self._updated_at = etag, version, now
        self._bases, self._log, self._log_texts, self._log_bytes = bases, logged, texts, log_bytes
        self._changes.clear()
        for event_id in ids:
            self.mark_applied(event_id)
        self._last_commit = ids
        self.dirty = False
        for base in dropped:
            await self._discard(base[1])
        return version

    async def replace(self, state: dict[str, Any], *, expected_version: int | None = None) -> int:
        return await self.save_state(state, expected_version=expected_version)

    async def patch(self, patch: dict[str, Any], *, expected_version: int | None = None) -> int:
        """Apply a JSON merge patch to the state (in place: only the patched paths are written)."""
        if not self._loaded:
            await self.reload()
        self._check_version(expected_version)
        if not isinstance(patch, dict):
            return await self.save_state(merge_patch(self._state, patch))
        _merge_in_place(self._state, patch)
        return await self.save_state()

    async def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The kept past versions (the last `history_limit`, the current one included), oldest first."""
        first, last = self._window()
        return await self._versions(max(first, last - limit + 1), last)

    async def get_version(self, version: int) -> dict[str, Any]:
        """`{"version", "state", "at", "event_id"}` as of `version`; NotFoundError outside the kept history."""
        first, last = self._window()
        found = await self._versions(version, version) if first <= version <= last else []
        if not found:
            raise NotFoundError(f"{self.agent_id}: version {version} is not in the history")
        return found[0]

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

    async def is_current(self) -> bool:
        """Whether the stored context is still the version this copy loaded or last committed (one read of its
        head): false once another instance has committed since."""
        doc = await self.store.get(self._key)
        return (doc.etag if doc is not None else None) == self._etag

    def snapshot(self) -> dict[str, Any]:
        return {"agent_id": self.agent_id, "version": self.version, "state": plain(self._state),
                "memory_count": self._memory_count, "applied": list(self._applied)}

    # --- storage layout ----------------------------------------------------------------------------

    def _check_version(self, expected_version: int | None) -> None:
        if expected_version is not None and expected_version != self.version:
            raise ConflictError(self._key, f"expected version {expected_version}, stored version is {self.version}")

    def _prune(self, bases: list[list[Any]], version: int) -> tuple[list[list[Any]], list[list[Any]]]:
        """The bases the history window still needs, and the snapshots no longer needed."""
        oldest = version - self._history_limit + 1
        keep = list(bases)
        while len(keep) > 1 and keep[1][0] <= oldest:
            keep.pop(0)
        return keep, [b for b in bases if b not in keep and b[1] is not None]

    def _window(self) -> tuple[int, int]:
        return max(1, self.version - self._history_limit + 1), self.version

    async def _base_state(self, base: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The state of a base and its snapshot document ({} for the empty base)."""
        if base[1] is None:
            return {}, {}
        doc = await self.store.get(base[1])
        if doc is None:
            raise NotFoundError(f"{self.agent_id}: the snapshot {base[1]} named by the context is missing")
        return doc.value["state"], doc.value

    async def _versions(self, first: int, last: int) -> list[dict[str, Any]]:
        """Each version from `first` to `last` as `{"version", "state", "at", "event_id"}`, replayed from the
        newest base at or before `first` (versions no kept base reaches come from the earlier layout's copies)."""
        if not self._loaded:
            await self.reload()
        found: list[dict[str, Any]] = []
        at = [i for i, b in enumerate(self._bases) if b[0] <= first]
        if not at:
            for version in range(first, min(last, self._bases[0][0] - 1 if self._bases else last) + 1):
                doc = await self.store.get(f"{self._key}/history/{version:012d}")
                if doc is not None:
                    found.append(doc.value)
            first = max(first, self._bases[0][0] if self._bases else last + 1)
            if first > last:
                return found
            at = [0]
        index = at[-1]
        state, snapshot = await self._base_state(self._bases[index])
        own = (snapshot.get("log") or [{}])[-1]
        if self._bases[index][0] >= first:
            found.append(_entry(self._bases[index][0], state, own))
        deltas: list[dict[str, Any]] = []
        for base in self._bases[index + 1:]:
            deltas.extend((await self._base_state(base))[1].get("log", []))
        deltas.extend(self._log)
        for delta in deltas:
            version = int(delta["version"])
            if version <= self._bases[index][0]:
                continue
            if version > last:
                break
            state = apply_ops(state, delta["ops"])
            if version >= first:
                found.append(_entry(version, state, delta))
        return found

    async def _discard(self, key: str) -> None:
        # Best effort: a snapshot left behind costs storage, never correctness (no head names it).
        try:
            await self.store.delete(key)
        except Exception as exc:
            log.warning("context %s: could not delete %s: %s", self.agent_id, key, exc)

    def _now(self) -> datetime:
        return self._clock.now() if self._clock else datetime.now(UTC)


def _ops(deltas: list[dict[str, Any]]) -> list[Any]:
    return [op for delta in deltas for op in delta["ops"]]


def _entry(version: int, state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    return {"version": version, "state": copy.deepcopy(state), "at": delta.get("at"),
            "event_id": delta.get("event_id")}


def _merge_in_place(target: dict[str, Any], patch: dict[str, Any]) -> None:
    # RFC 7386 on the tracked state, so only the patched paths are marked changed.
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge_in_place(target[key], value)
        else:
            target[key] = merge_patch(None, value)
