"""The one way into the kernel: every event is recorded once by id, audited, policy-checked, then delivered.

Events from HTTP, topics, timers, other agents, workflows and the Python API (`process_event`,
`send_message`) all come through `submit`. A resend of a known id gets the first record back; a target that
has not answered gets the event again only when no mailbox holds it (none running here, none handed to a
Durable entity), so a resend behind a backlog never queues a second copy. `AgentOperatingSystem` mixes this
in; the mailbox side (applying an event exactly once) is `AgentOperatingSystem.run_in_mailbox`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from aos_core.errors import AgentUnavailableError, NotFoundError, PolicyDenied, RegistrationError
from aos_core.event_records import EventRecord, EventRecords
from aos_core.events import AgentId, Event
from aos_core.ports import JSON, AgentResult, AuditLog, Dispatcher, Policy, PolicyRequest, Telemetry
from aos_core.single_flight import SingleFlight
from aos_core.telemetry import EVENTS_FAILED, SPAN_PROCESS

if TYPE_CHECKING:
    from aos_core.dispatch import LocalDispatcher
    from aos_core.router import Router

log = logging.getLogger("aos.kernel")
T = TypeVar("T")


class EventIntake:
    """What the kernel does with an event before an agent sees it (a mixin of AgentOperatingSystem)."""

    records: EventRecords
    router: Router
    dispatcher: LocalDispatcher
    remote: Dispatcher | None
    audit: AuditLog | None
    policy: Policy | None
    telemetry: Telemetry
    counts: dict[str, int]
    _delivering: SingleFlight[tuple[str, str], AgentResult]

    if TYPE_CHECKING:  # provided by AgentOperatingSystem
        async def _require_initialized(self) -> None: ...

        async def _address(self, agent_id: str) -> AgentId: ...

        async def _routes_current(self) -> None: ...

        def _perpetual(self, target: AgentId) -> bool: ...

    async def process_event(self, event: Event, *, topic: str | None = None) -> list[AgentResult]:
        """Submit `event` the way every event comes in (recorded, audited, policy-checked, applied at most once
        per agent) and return what each target did. A resent id returns the first outcome; a hosted kernel
        hands perpetual agents to their entities and returns without waiting for them."""
        record = await self.submit(event, topic=topic)
        return [AgentResult.from_dict(r) for r in record.results]

    async def send_message(self, agent_id: str, event: Event) -> AgentResult:
        """Submit `event` to one agent, whatever its subscriptions, and return what it did."""
        record = await self.submit(event, to_agent=agent_id)
        results = [AgentResult.from_dict(r) for r in record.results if r["agent_id"] == agent_id]
        return results[0] if results else AgentResult(agent_id, "accepted")

    async def submit(self, event: Event, *, topic: str | None = None, to_agent: str | None = None,
                     actor: str = "kernel") -> EventRecord:
        """Accept `event` once by its id, deliver it, and return its record (results so far, status).

        `to_agent` sends it to that agent only (NotFoundError if unknown); otherwise subscriptions route it.
        An id seen before is not applied again: its first record comes back, and a target that has not
        answered gets it again only if no mailbox holds it already (after a crash, say).
        """
        return (await self.submit_many([event], topic=topic, to_agent=to_agent, actor=actor))[0]

    async def submit_many(self, events: Sequence[Event], *, topic: str | None = None, to_agent: str | None = None,
                          actor: str = "kernel") -> list[EventRecord]:
        """`submit` for a batch: every event is accepted at once, then each agent gets its events in batch
        order while different agents are served in parallel."""
        await self._require_initialized()
        await self._routes_current()  # registrations made through other workers route from this event on
        intakes = await self._accept(events, topic, to_agent)
        await self._audit_accepted(actor, intakes)
        queues: dict[str, list[tuple[_Intake, AgentId]]] = {}
        for intake in intakes:
            for target in intake.targets:
                queues.setdefault(target.key, []).append((intake, target))
        await _all([self._deliver_in_order(queue) for queue in queues.values()])
        handed = [(i.record.id, i.handed_over) for i in intakes if i.handed_over]
        if handed:
            await self.records.mark_handed_over(handed)
        # Only a resent id needs a read (others may have answered it meanwhile); a fresh one's outcome is known.
        reread = iter(await _all([self.records.get(i.record.id) for i in intakes if i.targets and not i.created]))
        return [intake.outcome(next(reread) if intake.targets and not intake.created else None)
                for intake in intakes]

    async def _accept(self, events: Sequence[Event], topic: str | None, to_agent: str | None) -> list[_Intake]:
        """Record each event (one storage call for the new records), or find its first record; the targets still
        to deliver each to. They are audited together (`_audit_accepted`)."""
        kind = "message" if to_agent is not None else "event"
        addressed = [await self._address(to_agent)] if to_agent is not None else None
        routed: list[tuple[Event, list[AgentId]]] = []
        for event in events:
            with self.telemetry.event_span(SPAN_PROCESS, event, kind=topic or kind):
                routed.append((event, addressed if addressed is not None else self.router.route(event, topic)))
        accepted = await self.records.accept_many([(event, [t.key for t in targets]) for event, targets in routed],
                                                  kind=kind, topic=topic)
        seen_before = iter(await _all([self._resent(event, record) for (event, _), (record, created)
                                       in zip(routed, accepted, strict=True) if not created]))
        return [_Intake(record, event, targets, created=True) if created else next(seen_before)
                for (event, targets), (record, created) in zip(routed, accepted, strict=True)]

    async def _resent(self, event: Event, record: EventRecord) -> _Intake:
        """An event whose id was accepted before: what is left to deliver of it."""
        if record.status != "pending":
            return _Intake(record, event, [], created=False)
        # A resend of a pending event: a crash may have come between the record and its audit entry or its
        # hand-over. Deliver only to targets no mailbox holds: not running here, not handed to an entity.
        original = Event.model_validate(record.event) if record.event else event
        held = await self.records.handed_over(record.id) if self.remote is not None else set()
        missing = [key for key in record.missing() if key not in held]
        return _Intake(record, original, [await self._address(key) for key in missing], created=False,
                       check_audit=True)

    async def _audit_accepted(self, actor: str, intakes: list[_Intake]) -> None:
        """One `event.accepted` entry per new record, the batch in one append; then a resend of a pending event
        gets its entry if it has none (a crash came between its record and its entry). Before any delivery."""
        if self.audit is None:
            return
        created = [_accepted_entry(actor, i.event, i.record) for i in intakes if i.created]
        if created:
            await self.audit.append_many(created)
        for intake in intakes:  # after the batch's entries: an id sent twice in one batch is audited once
            if intake.check_audit and not await self.audit.entries(action="event.accepted",
                                                                   subject=f"event/{intake.event.id}", limit=1):
                await self.audit.append(*_accepted_entry(actor, intake.event, intake.record))

    async def _deliver_in_order(self, queue: list[tuple[_Intake, AgentId]]) -> None:
        if self.remote is not None and self._perpetual(queue[0][1]):
            await self._hand_over(self.remote, queue)
            return
        for intake, target in queue:
            result = await self._deliver_once(target, intake.event, fresh=intake.created)
            intake.results[target.key] = result

    async def _hand_over(self, remote: Dispatcher, queue: list[tuple[_Intake, AgentId]]) -> None:
        """Give one perpetual agent its events, in order, in one hand-over to its entity (which joins an event
        already on its way there); AgentUnavailableError if they could not be handed over (they stay pending)."""
        target = queue[0][1]
        allowed: list[_Intake] = []
        for intake, _ in queue:
            refusal = await self._refusal(target, intake.event)
            if refusal is None:
                allowed.append(intake)
            else:
                intake.results[target.key] = refusal
        if not allowed:
            return
        results = await remote.deliver_many(target, [intake.event for intake in allowed])
        for intake, result in zip(allowed, results, strict=True):
            intake.results[target.key] = result
            intake.handed_over.append(target.key)

    async def _deliver_once(self, target: AgentId, event: Event, *, fresh: bool) -> AgentResult:
        # A resend that arrives while this process still delivers the event joins that delivery.
        return await self._delivering.run((event.id, target.key), lambda: self._deliver(target, event, fresh=fresh))

    async def _deliver(self, target: AgentId, event: Event, *, fresh: bool = False) -> AgentResult:
        refusal = await self._refusal(target, event)
        if refusal is not None:
            return refusal
        try:
            return await self.dispatcher.deliver(target, event, fresh=fresh)
        except (NotFoundError, RegistrationError, AgentUnavailableError) as exc:
            return await self._finish(event, AgentResult(target.key, "rejected", error=str(exc)))

    async def _refusal(self, target: AgentId, event: Event) -> AgentResult | None:
        """The final `rejected` result when policy does not let `event` reach `target`; None when it may."""
        if self.policy is None:
            return None
        try:
            await self.policy.enforce(PolicyRequest("event.deliver", agent_id=target.key, agent_type=target.type,
                                                    event_type=event.type, subject=f"event/{event.id}"))
        except PolicyDenied as denied:
            return await self._finish(event, AgentResult(target.key, "rejected", error=str(denied),
                                                         extra={"rule_id": denied.rule_id}))
        return None

    async def apply_delivery(self, agent_id: str, event: Event) -> AgentResult:
        """Run `event` through this agent's mailbox here (see `apply_deliveries`)."""
        return (await self.apply_deliveries(agent_id, [event]))[0]

    async def apply_deliveries(self, agent_id: str, events: list[Event]) -> list[AgentResult]:
        """Run `events` through this agent's mailbox here, in order, in as few commits as the agent allows (the
        `agent` entity's deliver operation calls this; the events were accepted by `submit` on whichever instance
        took them in)."""
        await self._require_initialized()
        target = await self._address(agent_id)
        try:
            return await self.dispatcher.deliver_many(target, events)
        except (NotFoundError, RegistrationError, AgentUnavailableError) as exc:
            return [await self._finish(event, AgentResult(agent_id, "rejected", error=str(exc))) for event in events]

    async def _finish(self, event: Event, result: AgentResult) -> AgentResult:
        """Store a target's final result; a failure is also dead-lettered with its reason."""
        return (await self._finish_many([(event, result)]))[0]

    async def _finish_many(self, finished: Sequence[tuple[Event, AgentResult]]) -> list[AgentResult]:
        """`_finish` for several results (one agent's group commit), stored with one storage call."""
        for event, result in finished:
            if result.status == "failed":
                self.telemetry.increment(EVENTS_FAILED, type=event.type)
                self.counts["failed"] += 1
                await self.records.dead_letter(f"agent/{result.agent_id}", event.id, result.error or "failed",
                                               json.dumps(event.to_dict(), default=str))
                log.error("event %s failed for good at agent %s: %s", event.id, result.agent_id, result.error)
        await self.records.add_results([(event.id, result) for event, result in finished])
        return [result for _, result in finished]


def _accepted_entry(actor: str, event: Event, record: EventRecord) -> tuple[str, str, str, JSON]:
    return (actor, "event.accepted", f"event/{event.id}",
            {"type": event.type, "kind": record.kind, "targets": record.targets, "source": event.source,
             **{k: v for k, v in (("subject", event.subject), ("correlationid", event.correlationid)) if v}})


async def _all(work: list[Coroutine[Any, Any, T]]) -> list[T]:
    # gather's tasks and futures are worth it only when there is more than one thing to wait for
    if len(work) == 1:
        return [await work[0]]
    return list(await asyncio.gather(*work)) if work else []


@dataclass
class _Intake:
    """One event on its way in: its record, the targets this call delivers to, and what they did."""

    record: EventRecord
    event: Event
    targets: list[AgentId]
    created: bool
    check_audit: bool = False  # a resend of a pending event: its audit entry may be missing
    results: dict[str, AgentResult] = field(default_factory=dict)
    handed_over: list[str] = field(default_factory=list)  # targets whose entity now holds the event

    def outcome(self, stored: EventRecord | None) -> EventRecord:
        """The record to answer with; `stored` is the record read again after a resend's delivery."""
        if not self.targets:
            return self.record
        if not self.created:  # others may have answered meanwhile
            return stored or self.record
        # The record was made for this call (accept_many), so it takes its results in place.
        self.record.results = [self.results[k].to_dict() for k in self.record.targets
                               if k in self.results and self.results[k].status != "accepted"]
        return self.record
