"""Hosting agents: what the dispatcher and the lifecycle manager call on the kernel.

`activate` brings an agent live from its record and context; `run_in_mailbox` applies one event to one agent
exactly once (the result document is the durable answer), with the recovery back-off and bounded attempts of a
failing handler; what a handling sent (messages, workflows) goes out after its commit. `AgentOperatingSystem`
mixes this in.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, cast

from aos_core.agent_context import AgentContext, Outgoing
from aos_core.agent_types import AgentTypes
from aos_core.deadlines import Deadlines
from aos_core.errors import (
    AgentUnavailableError,
    InvalidEventError,
    NotFoundError,
    RegistrationError,
    StorageUnavailableError,
    outage_pauses,
)
from aos_core.etag import retry_on_conflict
from aos_core.event_records import EventRecord, EventRecords
from aos_core.events import AgentId, Event
from aos_core.lifecycle import AgentState, Lifecycle, LifecycleManager
from aos_core.ports import Agent, AgentResult, AuditLog, Clock, EventBus, Orchestrations, Policy, StateStore, Telemetry
from aos_core.registry import AgentRecord, AgentRegistry
from aos_core.telemetry import EVENTS_PROCESSED, HANDLING_DURATION, SPAN_HANDLER

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

    from aos_core.config import AOSConfig
    from aos_core.dispatch import LocalDispatcher

log = logging.getLogger("aos.kernel")


class AgentHosting:
    """Activation, exactly-once application, supervision hooks (a mixin of AgentOperatingSystem)."""

    config: AOSConfig
    clock: Clock
    hosted: bool
    audit: AuditLog | None
    policy: Policy | None
    telemetry: Telemetry
    orchestrations: Orchestrations | None
    records: EventRecords
    dispatcher: LocalDispatcher
    lifecycle: LifecycleManager
    counts: dict[str, int]
    _pinned: dict[str, Agent]
    _durable: bool
    _routes_seen: tuple[str | None, int]
    _agent_types: AgentTypes
    _handing_on: set[tuple[str, str]]  # (agent, outbox entry) being submitted here
    _live_records: dict[str, AgentRecord]  # live agents' registry records as last read or saved here
    _deadlines: Deadlines  # handlers' timeouts

    if TYPE_CHECKING:  # provided by AgentOperatingSystem and EventIntake
        @property
        def registry(self) -> AgentRegistry: ...

        @property
        def store(self) -> StateStore: ...

        @property
        def bus(self) -> EventBus: ...

        def _spawn(self, work: Awaitable[Any]) -> None: ...

        async def submit(self, event: Event, *, topic: str | None = None, to_agent: str | None = None,
                         actor: str = "kernel") -> EventRecord: ...

        async def _finish(self, event: Event, result: AgentResult) -> AgentResult: ...

        async def _finish_many(self, finished: Sequence[tuple[Event, AgentResult]]) -> list[AgentResult]: ...

    def _perpetual(self, target: AgentId) -> bool:
        if target.key in self._pinned:
            return False  # an object registered in this process lives here
        agent_class = self.registry.agent_class(target.type) if self.registry.has_type(target.type) else None
        return bool(getattr(agent_class, "perpetual", False))

    async def _address(self, agent_id: str) -> AgentId:
        agent = self._pinned.get(agent_id) or self.dispatcher.live_agent(agent_id)
        if agent is not None:
            return AgentId(agent.agent_type, agent_id)
        return AgentId(await self.agent_type(agent_id), agent_id)

    async def agent_type(self, agent_id: str) -> str:
        """The registered agent's type (NotFoundError if it is not registered), read from the registry only when
        it was not read since the registry generation this kernel routes by."""
        generation = self._routes_seen[1]
        agent_type = self._agent_types.get(agent_id, generation)
        if agent_type is None:
            agent_type = (await self.registry.require(agent_id)).type
            self._agent_types.put(agent_id, agent_type, generation)
        return agent_type

    async def _send_outbox(self, sender: str, outbox: list[Outgoing]) -> None:
        """Send what an agent without a context sent (nothing keeps it for a resend)."""
        for out in outbox:
            if self.hosted:
                await self._publish(out)
            else:
                self._spawn(self._submit_owed(sender, out.event, out.to_agent))

    async def _publish(self, out: Outgoing) -> None:
        # Through the bus, whose triggers submit it: the message survives this process, and its deterministic id
        # lets the event records drop a copy if it is sent again.
        topic = self.config.messaging.topic(direct=out.to_agent is not None)
        await self.bus.publish(topic, self.telemetry.inject(out.event))

    async def _hand_on(self, agent: Agent, *, waking: bool = False) -> str | None:
        """Hand on what the agent's handlings sent and nothing has taken yet (its context's outbox, committed with
        the state that sent it): messages to the bus when hosted, else submitted here; workflows started. An entry
        handed on leaves the outbox with the next commit; one a crash or an outage kept is handed on again at the
        next activation or commit, and its id lets the receiver drop a copy. The first error, or None.

        `waking`: the entries come from storage (the last commit's, or older ones never sent). Hosted, a message
        the event records know was delivered by the bus already and is not published again."""
        context = agent.context  # type: ignore[attr-defined]
        error = None
        for entry in context.unsent():
            if (agent.agent_id, entry["id"]) in self._handing_on:
                continue  # being submitted here already
            try:
                if "workflow" in entry:
                    await self._start_workflows(agent.agent_id, [entry["workflow"]])
                elif self.hosted:
                    if not (waking and await self.records.exists(entry["id"])):  # else the bus delivered it
                        await self._publish(Outgoing(Event.model_validate(entry["event"]), entry.get("to_agent")))
                else:
                    self._handing_on.add((agent.agent_id, entry["id"]))
                    self._spawn(self._submit_outgoing(context, agent.agent_id, entry))
                    continue
            except Exception as exc:  # kept in the outbox for the next try
                log.error("agent %s: handing on %s failed: %s", agent.agent_id, entry["id"], exc)
                error = error or f"{type(exc).__name__}: {exc}"
                continue
            context.mark_sent(entry["id"])
        return error

    async def _submit_outgoing(self, context: Any, sender: str, entry: dict[str, Any]) -> None:
        """Submit a message kept in the sender's outbox here; it leaves the outbox once submitted."""
        try:
            await self._submit_owed(sender, Event.model_validate(entry["event"]), entry.get("to_agent"))
            context.mark_sent(entry["id"])
        finally:
            self._handing_on.discard((sender, entry["id"]))

    async def _submit_owed(self, sender: str, event: Event, to_agent: str | None) -> None:
        """Submit an agent's message here, trying again while storage is unavailable: the sender's handling is
        done, so the message is as much owed as an event a client was answered 202 for."""
        pauses = outage_pauses()
        while True:
            try:
                await self.submit(event, to_agent=to_agent, actor=f"agent:{sender}")
                return
            except StorageUnavailableError as exc:
                pause = next(pauses)
                log.warning("agent %s: message %s waits for storage (%s); trying again in %.1fs", sender, event.id,
                            exc, pause)
                await asyncio.sleep(pause)
            except Exception:  # refused for good (an unknown target, say): as a client's submit would be
                log.exception("agent %s: message %s could not be submitted", sender, event.id)
                return

    async def _start_workflows(self, sender: str, workflows: list[dict[str, Any]]) -> None:
        for spec in workflows:
            if self.orchestrations is None:
                log.warning("agent %s started workflow %s, but this kernel runs no orchestrations (they need the "
                            "local host or Azure Functions); it does not run", sender, spec["id"])
                continue
            definition = {k: v for k, v in spec.items() if k != "id"}
            await self.orchestrations.start(spec["id"], definition, started_by=f"agent:{sender}")

    # --- what the dispatcher calls (AgentHost) -------------------------------------------------------

    def pinned(self, agent_id: str) -> bool:
        return agent_id in self._pinned

    async def activate(self, agent_id: AgentId) -> Agent:
        key = agent_id.key
        record = await self.registry.get(key)
        if record is None:
            agent_class = self.registry.agent_class(agent_id.type)  # type subscriptions create on first use
            record = await self.registry.add(AgentRecord(
                id=key, type=agent_id.type, capabilities=list(getattr(agent_class, "capabilities", ())),
                created_at=self.clock.now().isoformat()))
        if record.type != agent_id.type:
            raise RegistrationError(f"agent {key!r} is of type {record.type!r}, not {agent_id.type!r}")
        lifecycle = self.lifecycle.get(key) or (Lifecycle.from_dict(record.lifecycle) if record.lifecycle
                                                else Lifecycle())
        if lifecycle.state in (AgentState.TERMINATED, AgentState.FAILED):
            raise AgentUnavailableError(f"agent {key!r} is {lifecycle.state}: {lifecycle.reason or 'no reason'}")
        for dep in record.depends_on:
            await self.dispatcher.ensure_live(await self._address(dep))
        agent = self._pinned.get(key)
        if agent is None:
            agent = self.registry.agent_class(record.type).create(key, record.config)
            agent.agent_type = record.type  # a class may be registered under another type name
        if agent.perpetual:
            agent.bind(self.store, clock=self.clock, dedupe_window=self.config.dispatch.dedupe_window,  # type: ignore[attr-defined]
                       host=self)
        await agent.initialize()
        await self._settle_last_commit(agent)
        if _has_outbox(agent):
            await self._hand_on(agent, waking=True)  # what a crash or an outage kept from going out
        now = self.clock.now()
        if lifecycle.state == AgentState.CREATED:
            lifecycle.transition(AgentState.INITIALIZED, at=now)
        if lifecycle.state in (AgentState.INITIALIZED, AgentState.SLEEPING):
            lifecycle.transition(AgentState.RUNNING, at=now)
            record = await self._persist_lifecycle(key, lifecycle, record)
        if record is not None:
            self._live_records[key] = record  # its next lifecycle change is a write without a read
        self.lifecycle.track(key, lifecycle)
        return agent

    async def run_in_mailbox(self, target: AgentId, event: Event, *, fresh: bool = False) -> AgentResult:
        """Apply `event` to one agent, holding its mailbox: at most once, exactly.

        The result document stored here, before the mailbox is released, is the durable answer to "has this
        agent dealt with this event": a redelivery finds it and applies nothing. Only a crash between the
        agent's commit and that write can leave it out; the context then names the event as its last applied
        one, and `activate` writes the missing result before anything else runs.

        A handling that fails is retried after the agent's recovery back-off, up to `dispatch.max_attempts`
        times; then the event is failed with the reason and dead-lettered, and the agent goes on. Storage that
        cannot be reached is neither the agent's failure nor the event's: StorageUnavailableError goes to the
        caller with nothing recorded as final, so the event stays pending and a resend (or the entity's retry)
        applies it once storage answers again.
        """
        key = target.key
        if not fresh and await self.records.has_result(event.id, key):  # fresh: accepted just now, by us
            return AgentResult(key, "duplicate")
        attempts = self.config.dispatch.max_attempts
        error = "not attempted"
        for attempt in range(1, attempts + 1):
            try:
                await self._available(key)
                agent = await self.dispatcher.ensure_live(target)
            except (NotFoundError, RegistrationError, StorageUnavailableError):
                raise
            except AgentUnavailableError as exc:
                lifecycle = self.lifecycle.get(key)
                status = "failed" if lifecycle is not None and lifecycle.state == AgentState.FAILED else "rejected"
                return await self._finish(event, AgentResult(key, status, error=str(exc)))
            except Exception as exc:  # could not be activated: a failure of the agent, recovered like one
                error = f"activation failed: {type(exc).__name__}: {exc}"
                await self._record_failure(key, event, error, attempt)
                continue
            result = await self._apply(agent, event)
            if result.status != "failed":
                return await self._finish(event, result)
            error = result.error or "failed"
            await self.dispatcher.drop(key, save=False)  # its state may be half-changed: reload on next use
            if attempt < attempts:  # the last failure is the event's, not the agent's: it goes on after it
                await self._record_failure(key, event, error, attempt)
        return await self._finish(event, AgentResult(key, "failed", error=f"{error} (after {attempts} attempts)"))

    async def run_many_in_mailbox(self, target: AgentId, events: list[Event]) -> list[AgentResult]:
        """`run_in_mailbox` for several events to one agent, in order, each applied at most once, exactly.

        An agent that can (a perpetual one) applies them in commits of up to `dispatch.dedupe_window` events: one
        context write and its result documents per group. The crash between that write and the results is settled
        as for one event (`activate` writes the results of every event the last commit applied). A group with a
        handler that raises, times out or rejects its event is not committed at all and goes one event at a time,
        with the retries and failure handling of `run_in_mailbox`.
        """
        key = target.key
        if len(events) == 1:
            return [await self.run_in_mailbox(target, events[0])]
        # Wake the agent first: activation writes the results its last commit lacks (a crash came between), and
        # the check below must see them. Checked before it, such an event would look new, and once later events
        # of this hand-over push it out of the context's recent ids, it would be applied a second time.
        try:
            await self._available(key)
            await self.dispatcher.ensure_live(target)
            awake = True
        except Exception:  # reported by the one-at-a-time path, which checks each result again once it wakes
            awake = False
        known = await self.records.have_results([event.id for event in events], key)
        results: list[AgentResult | None] = [AgentResult(key, "duplicate") if done else None for done in known]
        todo: list[int] = []
        seen: set[str] = set()
        for index, event in enumerate(events):
            if results[index] is not None:
                continue
            if event.id in seen:  # the same id twice in one hand-over: applied once
                results[index] = AgentResult(key, "duplicate")
                continue
            seen.add(event.id)
            todo.append(index)
        size = self.config.dispatch.dedupe_window
        for offset in range(0, len(todo), size):
            group = todo[offset:offset + size]
            together = await self._apply_together(target, [events[i] for i in group]) if len(group) > 1 else None
            if together is None:
                for index in group:  # none of the group was committed: each on its own (checked above if awake)
                    results[index] = await self.run_in_mailbox(target, events[index], fresh=awake)
                continue
            final = await self._finish_many([(events[i], r) for i, r in zip(group, together, strict=True)])
            for index, result in zip(group, final, strict=True):
                results[index] = result
        return cast(list[AgentResult], results)  # every index was given its result above

    async def _apply_together(self, target: AgentId, events: list[Event]) -> list[AgentResult] | None:
        """Apply `events` to the agent with one commit; None when they must go one at a time (the agent cannot
        batch, is not available, or a handler raised or timed out): nothing of them was committed then."""
        try:
            await self._available(target.key)
            agent = await self.dispatcher.ensure_live(target)
        except Exception:  # the one-at-a-time path reports it, with its recovery
            return None
        process_many = getattr(agent, "process_many", None)
        if process_many is None:
            return None
        dispatch = self.config.dispatch

        async def bounded(event: Event, work: Awaitable[Any]) -> Any:
            with self.telemetry.event_span(SPAN_HANDLER, event, agent=agent.agent_id):
                async with self._deadlines.bound(dispatch.handler_timeout):
                    return await work

        contexts = [AgentContext(agent.agent_id, event, self.clock, audit=self.audit, policy=self.policy)
                    for event in events]
        started = self.clock.monotonic()
        try:
            outcomes = await process_many(list(zip(events, contexts, strict=True)), durable=self._durable,
                                          around=bounded)
        except StorageUnavailableError:
            await self.dispatcher.drop(target.key, save=False)  # as in _apply
            raise
        except Exception:
            return None
        each = (self.clock.monotonic() - started) / len(events)
        return [await self._applied(agent, event, ctx, status, result, each)
                for event, ctx, (status, result) in zip(events, contexts, outcomes, strict=True)]

    async def _available(self, key: str) -> None:
        # An agent that failed in an earlier process is not supervised here yet: take it on, so its recovery
        # runs and the event waits for it instead of being turned away.
        if self.lifecycle.get(key) is None and not self.dispatcher.is_live(key):
            record = await self.registry.get(key)
            if record is not None and record.lifecycle:
                stored = Lifecycle.from_dict(record.lifecycle)
                if stored.state == AgentState.FAILED:
                    self.lifecycle.track(key, stored)
        await self.lifecycle.wait_available(key)

    async def _record_failure(self, key: str, event: Event, error: str, attempt: int) -> None:
        log.warning("agent %s failed on event %s (attempt %d): %s", key, event.id, attempt, error)
        await self.lifecycle.record_failure(key, error)

    async def _apply(self, agent: Agent, event: Event) -> AgentResult:
        ctx = AgentContext(agent.agent_id, event, self.clock, audit=self.audit, policy=self.policy)
        started = self.clock.monotonic()
        dispatch = self.config.dispatch
        try:
            with self.telemetry.event_span(SPAN_HANDLER, event, agent=agent.agent_id):
                async with self._deadlines.bound(dispatch.handler_timeout):  # no extra task, unlike wait_for
                    status, result = await agent.process(event, ctx, durable=self._durable,
                                                         retries=dispatch.commit_retries)
        except InvalidEventError as exc:
            return AgentResult(agent.agent_id, "rejected", error=str(exc))
        except StorageUnavailableError:
            await self.dispatcher.drop(agent.agent_id, save=False)  # it may hold a change that was not committed
            raise
        except TimeoutError:
            return AgentResult(agent.agent_id, "failed",
                               error=f"the handler did not finish within {dispatch.handler_timeout:g}s")
        except Exception as exc:
            return AgentResult(agent.agent_id, "failed", error=f"{type(exc).__name__}: {exc}")
        return await self._applied(agent, event, ctx, status, result, self.clock.monotonic() - started)

    async def _applied(self, agent: Agent, event: Event, ctx: AgentContext, status: str, result: Any,
                       duration: float) -> AgentResult:
        """What follows a committed handling: metrics, recovery noted, the handling's messages and workflows sent."""
        if status == "duplicate":  # its commit landed before a crash that lost the result: say it is done
            status, result = "completed", None
        self.telemetry.increment(EVENTS_PROCESSED, type=event.type, status=status)
        self.counts["processed"] += 1
        self.telemetry.histogram(HANDLING_DURATION, duration, type=event.type)
        lifecycle = self.lifecycle.get(agent.agent_id)
        if lifecycle is not None and lifecycle.restarts:
            await self.lifecycle.record_success(agent.agent_id)
        if _has_outbox(agent):  # what it sent was committed with its state
            error = await self._hand_on(agent)
            if error is not None:  # the state is committed; say what was not sent yet rather than fail it
                return AgentResult(agent.agent_id, status, result, extra={"outbox_error": error})
            return AgentResult(agent.agent_id, status, result)
        if ctx.outbox:
            try:
                await self._send_outbox(agent.agent_id, ctx.outbox)
            except Exception as exc:  # the state is committed; say what was not sent rather than fail it
                log.error("agent %s: sending its outbox for event %s failed: %s", agent.agent_id, event.id, exc)
                return AgentResult(agent.agent_id, status, result, extra={"outbox_error": str(exc)})
        if ctx.workflows:
            try:
                await self._start_workflows(agent.agent_id, ctx.workflows)
            except Exception as exc:  # as for the outbox: committed, so say what did not start
                log.error("agent %s: starting workflows for event %s failed: %s", agent.agent_id, event.id, exc)
                return AgentResult(agent.agent_id, status, result, extra={"workflow_error": str(exc)})
        return AgentResult(agent.agent_id, status, result)

    async def _settle_last_commit(self, agent: Agent) -> None:
        # The events whose commit may have landed without their result documents (a crash in between) are those
        # the context's last commit names: write their results now, before any other event can follow them.
        context = getattr(agent, "context", None)
        for event_id in getattr(context, "last_commit_applied", None) or []:
            if await self.records.has_result(event_id, agent.agent_id):
                continue
            if await self.records.exists(event_id):
                await self.records.add_result(event_id, AgentResult(agent.agent_id, "completed",
                                                                    extra={"settled": True}))

    async def deactivate(self, agent: Agent) -> None:
        await agent.sleep()
        lifecycle = self.lifecycle.get(agent.agent_id)
        try:
            if lifecycle is not None and lifecycle.state == AgentState.RUNNING:
                await self.lifecycle.transition(agent.agent_id, AgentState.SLEEPING)
        finally:
            self._live_records.pop(agent.agent_id, None)
        self.lifecycle.forget(agent.agent_id)

    # --- what the lifecycle manager calls (Supervisor) ------------------------------------------------

    async def check_health(self, agent_id: str) -> bool | str:
        agent = self.dispatcher.live_agent(agent_id)
        return True if agent is None else await agent.health_check()

    async def restart(self, agent_id: str) -> None:
        await self.dispatcher.drop(agent_id, save=False)
        await self.dispatcher.ensure_live(await self._address(agent_id))

    async def on_change(self, agent_id: str, lifecycle: Lifecycle) -> None:
        await self._persist_lifecycle(agent_id, lifecycle)

    async def _persist_lifecycle(self, agent_id: str, lifecycle: Lifecycle, record: AgentRecord | None = None
                                 ) -> AgentRecord | None:
        """Write the agent's lifecycle into its registry record; the record as saved (None if there is none).

        The caller's copy, or the one a live agent's activation read or last saved, is tried first without a
        read (its ETag makes the write fail if anyone changed the record since); after a lost race, the record
        is read again."""
        first = [record or self._live_records.pop(agent_id, None)]
        saved: list[AgentRecord] = []

        async def attempt() -> None:
            current = first.pop() if first else None
            current = current or await self.registry.get(agent_id)
            if current is None:
                return
            if (current.lifecycle or {}).get("state") == AgentState.TERMINATED and \
                    lifecycle.state != AgentState.TERMINATED:
                return  # terminated by another worker meanwhile: that is final, whatever this one last saw
            current.lifecycle = lifecycle.to_dict()
            await self.registry.save(current)
            saved[:] = [current]

        await retry_on_conflict(attempt, key=f"registry/agents/{agent_id}", what="lifecycle update")
        if saved and self.dispatcher.is_live(agent_id):
            self._live_records[agent_id] = saved[0]
        return saved[0] if saved else None


def _has_outbox(agent: Agent) -> bool:
    """Whether the agent keeps what it sends in its context until it is handed on (a perpetual agent)."""
    return callable(getattr(getattr(agent, "context", None), "unsent", None))
