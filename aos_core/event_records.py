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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aos_core.errors import ConflictError
from aos_core.events import Event
from aos_core.ports import JSON, AgentResult, Clock, StateStore
from aos_core.result_board import ResultBoard

Status = Literal["pending", "completed", "failed", "rejected"]
_PREFIX = "events/"
DEADLETTERS = "deadletters/"  # poison events and messages, keyed by a sha256 of where they came from and their id
_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")
# How often a caller waiting for an event that another instance handles reads its record again; results written
# on this instance wake the caller at once, without reading (aos_core.result_board).
_POLL_STEPS = (0.5, 1.0, 2.0)


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
        self.board = ResultBoard()

    async def accept(self, event: Event, targets: list[str], *, kind: str = "event", topic: str | None = None
                     ) -> tuple[EventRecord, bool]:
        """Record `event` as accepted for `targets`; `(record, False)` with the first record if its id was seen."""
        return (await self.accept_many([(event, targets)], kind=kind, topic=topic))[0]

    async def accept_many(self, batch: Sequence[tuple[Event, list[str]]], *, kind: str = "event",
                          topic: str | None = None) -> list[tuple[EventRecord, bool]]:
        """`accept` for each `(event, targets)`, the new records created in one storage call."""
        accepted_at = self._clock.now().isoformat()
        # What the result board keeps (no event data), and the stored record: the same with the event.
        heads = [{"id": event.id, "type": event.type, "kind": kind, "topic": topic, "targets": targets,
                  "accepted_at": accepted_at} for event, targets in batch]
        values = [{**head, "event": event.to_dict()} for head, (event, _) in zip(heads, batch, strict=True)]
        etags = await self._store.create_many([(record_key(value["id"]), value) for value in values])
        accepted: list[tuple[EventRecord, bool]] = []
        for head, value, etag in zip(heads, values, etags, strict=True):
            if etag is not None:
                self.board.accepted(head)
                accepted.append((EventRecord(id=head["id"], type=head["type"], accepted_at=accepted_at,
                                             targets=list(head["targets"]), kind=kind, topic=topic,
                                             event=value["event"]), True))
                continue
            existing = await self.get(value["id"])  # an id seen before: its first record
            if existing is None:  # created and deleted in between: let the caller's retry decide
                raise ConflictError(record_key(value["id"]), "already exists")
            existing.repeat = True
            accepted.append((existing, False))
        return accepted

    async def add_result(self, event_id: str, result: AgentResult) -> bool:
        """Store one target's result; a second result for the same target (a redelivery) is ignored (False)."""
        return (await self.add_results([(event_id, result)]))[0]

    async def add_results(self, results: Sequence[tuple[str, AgentResult]]) -> list[bool]:
        """`add_result` for each `(event id, result)`, created in one storage call."""
        values = [(event_id, result.to_dict()) for event_id, result in results]
        created = await self._store.create_many([(_result_key(event_id, str(value["agent_id"])), value)
                                                 for event_id, value in values])
        for (event_id, value), etag in zip(values, created, strict=True):
            if etag is not None:
                self.board.post(event_id, value)
        return [etag is not None for etag in created]

    async def has_result(self, event_id: str, agent_id: str) -> bool:
        """Whether `agent_id` has dealt with the event for good (applied, refused, or failed it)."""
        return (await self.have_results([event_id], agent_id))[0]

    async def have_results(self, event_ids: Sequence[str], agent_id: str) -> list[bool]:
        """`has_result` for several events to one agent, read with one storage call."""
        docs = await self._store.get_many([_result_key(event_id, agent_id) for event_id in event_ids])
        return [doc is not None for doc in docs]

    async def exists(self, event_id: str) -> bool:
        return await self._store.get(record_key(event_id)) is not None

    async def mark_handed_over(self, handed: Sequence[tuple[str, list[str]]]) -> None:
        """Note, for each `(event id, agents)`, that these targets' mailboxes elsewhere (Durable entities) hold the
        event, so a resend of the pending event does not queue it a second time."""
        notes = [(f"{record_key(event_id)}/handover", list(dict.fromkeys(agents))) for event_id, agents in handed]
        # The first hand-over of an event (nearly all of them): created together, no read.
        created = await self._store.create_many([(key, {"agents": agents}) for key, agents in notes])
        for (key, agents), etag in zip(notes, created, strict=True):
            if etag is None:  # handed over before (a resend after a crash): add these agents to those known
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
        """The record once it is no longer pending, or as it is after `seconds` of the clock.

        Results written on this instance wake the caller without a read; storage is read again (at a slow
        back-off) only while a target's result has not been written here, as when another instance runs it.
        """
        deadline = self._clock.monotonic() + seconds
        record = self._posted(event_id) or await self.get(event_id)
        step = 0
        while True:
            left = deadline - self._clock.monotonic()
            if record is None or record.status != "pending" or left <= 0:
                return record
            woke = await self.board.changed(event_id, min(_POLL_STEPS[min(step, len(_POLL_STEPS) - 1)], left),
                                            self._clock)
            posted = self._posted(event_id, record)
            if woke and posted is not None:
                record = posted
            else:
                step += 1
                record = self._posted(event_id, await self.get(event_id)) or record

    def _posted(self, event_id: str, read: EventRecord | None = None) -> EventRecord | None:
        """The record as this instance knows it (accepted or read here) with the results posted here."""
        posted = self.board.get(event_id)
        value = posted.record if posted is not None and posted.record is not None else None
        if value is None and read is not None:
            value = {"id": read.id, "type": read.type, "kind": read.kind, "topic": read.topic,
                     "targets": read.targets, "accepted_at": read.accepted_at}
        if value is None:
            return None
        results = {str(r["agent_id"]): r for r in (read.results if read is not None else [])}
        results.update(posted.results if posted is not None else {})
        record = self._from(value, list(results.values()))
        if read is not None:
            record.event = read.event
        return record

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
