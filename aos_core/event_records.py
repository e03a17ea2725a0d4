"""Accepted events and what each target agent did with them, stored by event id.

An event is accepted once: its record is created with a create-only write, so a client (or Service Bus) that
sends the same id again gets the first one's status instead of a second application. Each target's result is
its own create-only document, so agents finishing in parallel never race on one record, and a redelivered
result is ignored. The status is derived on read: `pending` until every target answered, then `failed` if any
target failed, `rejected` if targets only refused it (invalid data, a policy, a terminated agent), else
`completed`.

A target's result document is also how the kernel knows, exactly, that an agent has dealt with an event: it
is written inside the agent's mailbox before the next event runs (see `AgentOperatingSystem.run_in_mailbox`).
Events whose handling kept failing are dead-lettered under `deadletters/` with the reason.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aos_core.errors import ConflictError
from aos_core.events import Event
from aos_core.ports import JSON, AgentResult, Clock, StateStore

Status = Literal["pending", "completed", "failed", "rejected"]
_PREFIX = "events/"
DEADLETTERS = "deadletters/"  # poison events and messages, keyed by a sha256 of where they came from and their id
_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
_WAIT_STEPS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def key_slug(value: str) -> str:
    # Ids become key segments: keep readable ones, hash the rest so `/` or odd characters cannot alias a key.
    return value if _SAFE.match(value) else "~" + hashlib.sha256(value.encode()).hexdigest()


def record_key(event_id: str) -> str:
    return f"{_PREFIX}{key_slug(event_id)}"


def _result_prefix(event_id: str) -> str:
    return f"{record_key(event_id)}/results/"


def _result_key(event_id: str, agent_id: str) -> str:
    return _result_prefix(event_id) + key_slug(agent_id)


@dataclass
class EventRecord:
    id: str
    type: str
    accepted_at: str
    targets: list[str]
    kind: str = "event"  # "event" (routed by subscriptions) or "message" (sent to one agent)
    topic: str | None = None
    results: list[dict[str, JSON]] = field(default_factory=list)
    event: dict[str, JSON] = field(default_factory=dict)
    repeat: bool = False  # this id had been accepted before: the record is the first one's (not stored)

    @property
    def status(self) -> Status:
        answered = {r["agent_id"] for r in self.results}
        if not answered >= set(self.targets):
            return "pending"
        statuses = {r["status"] for r in self.results}
        if "failed" in statuses:
            return "failed"
        return "rejected" if "rejected" in statuses else "completed"

    def missing(self) -> list[str]:
        answered = {r["agent_id"] for r in self.results}
        return [t for t in self.targets if t not in answered]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "type": self.type, "kind": self.kind,
                "accepted_at": self.accepted_at, "targets": self.targets, "results": self.results}


class EventRecords:
    """Records of accepted events on the StateStore (`events/<id>` and `events/<id>/results/<agent>`)."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._purge_cursor: str | None = None  # where the last purge pass stopped

    async def accept(self, event: Event, targets: list[str], *, kind: str = "event", topic: str | None = None
                     ) -> tuple[EventRecord, bool]:
        """Record `event` as accepted for `targets`; `(record, False)` with the first record if its id was seen."""
        value = {"id": event.id, "type": event.type, "kind": kind, "topic": topic, "targets": targets,
                 "accepted_at": self._clock.now().isoformat(), "event": event.to_dict()}
        try:
            await self._store.put(record_key(event.id), value, if_none_match=True)
        except ConflictError:
            existing = await self.get(event.id)
            if existing is not None:
                existing.repeat = True
                return existing, False
            raise  # created and deleted in between: let the caller's retry decide
        return self._from(value, []), True

    async def add_result(self, event_id: str, result: AgentResult) -> bool:
        """Store one target's result; a second result for the same target (a redelivery) is ignored (False)."""
        try:
            await self._store.put(_result_key(event_id, result.agent_id), result.to_dict(), if_none_match=True)
        except ConflictError:
            return False
        return True

    async def has_result(self, event_id: str, agent_id: str) -> bool:
        """Whether `agent_id` has dealt with the event for good (applied, refused, or failed it)."""
        return await self._store.get(_result_key(event_id, agent_id)) is not None

    async def exists(self, event_id: str) -> bool:
        return await self._store.get(record_key(event_id)) is not None

    async def mark_handed_over(self, event_id: str, agents: list[str]) -> None:
        """Note that these targets' mailboxes elsewhere (Durable entities) hold the event, so a resend of the
        pending event does not queue it a second time."""
        key = f"{record_key(event_id)}/handover"
        doc = await self._store.get(key)
        known = list(doc.value.get("agents", [])) if doc is not None and isinstance(doc.value, dict) else []
        merged = list(dict.fromkeys([*known, *agents]))
        if merged != known:
            await self._store.put(key, {"agents": merged})

    async def handed_over(self, event_id: str) -> set[str]:
        doc = await self._store.get(f"{record_key(event_id)}/handover")
        return set(doc.value.get("agents", [])) if doc is not None and isinstance(doc.value, dict) else set()

    async def dead_letter(self, source: str, message_id: str | None, reason: str, body: str, *,
                          delivery_count: int | None = None) -> str:
        """Keep what could not be processed, with the reason, for `GET /api/deadletters`; returns its id."""
        key_id = message_id or hashlib.sha256(body.encode()).hexdigest()
        value = {"topic": source, "message_id": message_id, "reason": reason, "delivery_count": delivery_count,
                 "recorded_at": self._clock.now().isoformat(), "body": body[:4096]}
        dead_id = hashlib.sha256(f"{source}|{key_id}".encode()).hexdigest()
        await self._store.put(f"{DEADLETTERS}{dead_id}", value)
        return dead_id

    async def get(self, event_id: str) -> EventRecord | None:
        doc = await self._store.get(record_key(event_id))
        if doc is None:
            return None
        results = [d.value for d in await self._store.list(_result_prefix(event_id))]
        return self._from(doc.value, results)

    async def wait(self, event_id: str, seconds: float) -> EventRecord | None:
        """The record once it is no longer pending, or as it is after `seconds` of the clock."""
        deadline = self._clock.monotonic() + seconds
        step = 0
        while True:
            record = await self.get(event_id)
            left = deadline - self._clock.monotonic()
            if record is None or record.status != "pending" or left <= 0:
                return record
            await self._clock.sleep(min(_WAIT_STEPS[min(step, len(_WAIT_STEPS) - 1)], left))
            step += 1

    async def purge(self, older_than: float, *, limit: int = 500) -> int:
        """Delete records (and their results) accepted more than `older_than` seconds ago; returns how many.

        Each call reads at most `limit` documents and goes on from where the last one stopped, so a timer
        can call it every tick. A resend of a purged id is accepted again: keep the retention longer than
        any client retries.
        """
        cutoff = self._clock.now() - timedelta(seconds=older_than)
        docs = await self._store.list(_PREFIX, start_after=self._purge_cursor, limit=limit)
        self._purge_cursor = docs[-1].key if len(docs) == limit else None
        purged = 0
        for doc in docs:
            if "/" in doc.key[len(_PREFIX):] or not isinstance(doc.value, dict):
                continue
            if datetime.fromisoformat(doc.value["accepted_at"]) > cutoff:
                continue
            for part in await self._store.list(doc.key + "/"):
                await self._store.delete(part.key)
            await self._store.delete(doc.key)
            purged += 1
        return purged

    @staticmethod
    def _from(value: dict[str, Any], results: list[dict[str, JSON]]) -> EventRecord:
        order = {agent: n for n, agent in enumerate(value["targets"])}
        results.sort(key=lambda r: order.get(str(r.get("agent_id")), len(order)))
        return EventRecord(id=value["id"], type=value["type"], accepted_at=value["accepted_at"],
                           targets=list(value["targets"]), kind=value.get("kind", "event"), topic=value.get("topic"),
                           results=results, event=value.get("event", {}))
