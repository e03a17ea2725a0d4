"""AgentOperatingSystem: registers agents, routes events to them, and keeps them alive.

The kernel is composed here: its ports, its loops (lifecycle, eviction, scheduler, watchdog) and its shutdown.
What it does is in the mixins: `intake.EventIntake` (the one way in), `registration.AgentRegistration` (agents,
dependencies, routing) and `agent_host.AgentHosting` (activation and exactly-once application).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aos_core.agent_host import AgentHosting
from aos_core.agent_types import AgentTypes
from aos_core.clock import SystemClock, UuidIds
from aos_core.config import AOSConfig
from aos_core.deadlines import Deadlines
from aos_core.dispatch import LocalDispatcher
from aos_core.event_records import EventRecord, EventRecords
from aos_core.events import Event
from aos_core.graph import topological_order
from aos_core.intake import EventIntake
from aos_core.lifecycle import LifecycleManager
from aos_core.ports import (
    Agent,
    AgentResult,
    AuditLog,
    Clock,
    Dispatcher,
    EventBus,
    IdempotencyKeys,
    IdFactory,
    Orchestrations,
    Policy,
    StateStore,
    Telemetry,
)
from aos_core.registration import AgentRegistration
from aos_core.registry import AgentRecord, AgentRegistry
from aos_core.router import Router
from aos_core.runtime import (
    build_alerts,
    build_audit_log,
    build_breakers,
    build_event_bus,
    build_idempotency,
    build_policy,
    build_reasoner,
    build_state_store,
    builtin_agent_types,
    context_store,
    entry_point_agent_types,
    import_agent_type,
    use_context_store,
)
from aos_core.scheduler import Scheduler
from aos_core.single_flight import SingleFlight
from aos_core.telemetry import (
    LOOP_BLOCKED,
    NoTelemetry,
)
from aos_core.watchdog import LoopWatchdog, Stall
from aos_core.workflow import WorkflowEngine

log = logging.getLogger("aos.kernel")


class AgentOperatingSystem(EventIntake, AgentRegistration, AgentHosting):
    """The kernel. `await initialize()`, `register_agent(...)`, `await process_event(event)`, `await shutdown()`.

    Ports not passed in are built from `config` by `aos_core.runtime` (SQLite files by default).

    Every event, from any trigger, another agent, a workflow or this Python API, comes in through `submit`:
    recorded once by id, audited, checked against the `event.deliver` policy, then delivered.

    `hosted=True` is how a Functions host runs it (`aos_core.runtime.get_aos`): the timer trigger drives the
    scheduler (`tick`) and events agents publish go to the bus topics (whose triggers submit them). `remote`
    is where perpetual agents' mailboxes live when they are not in this process (Durable entities); it is
    fixed here, when the kernel is composed, never per request.
    """

    def __init__(
        self,
        config: AOSConfig | None = None,
        *,
        store: StateStore | None = None,
        bus: EventBus | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        hosted: bool = False,
        remote: Dispatcher | None = None,
        audit: AuditLog | None = None,
        policy: Policy | None = None,
        telemetry: Telemetry | None = None,
        orchestrations: Orchestrations | None = None,
    ) -> None:
        self.config = config or AOSConfig()
        self.hosted = hosted
        self.remote = remote  # perpetual agents' mailboxes elsewhere (Durable entities), fixed for good here
        self.audit = audit  # built from config.governance at initialize when not given
        self.policy = policy
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.orchestrations = orchestrations  # where workflows agents start run (Durable orchestrations when hosted)
        self.clock: Clock = clock or SystemClock()
        self.ids: IdFactory = ids or UuidIds()
        self._store = store
        self._bus = bus
        self._owned: list[Any] = []
        self.breakers = build_breakers()  # one per dependency, shared by this kernel's agents and services
        self._reasoner: Any = None
        self.router = Router()
        self._pinned: dict[str, Agent] = {}
        self._deps: dict[str, tuple[str, ...]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # messages agents sent, being delivered
        self._delivering: SingleFlight[tuple[str, str], AgentResult] = SingleFlight()  # (event id, agent)
        self._deadlines = Deadlines()
        self._loops: set[asyncio.Task[Any]] = set()  # scheduler, lifecycle and eviction loops
        self._on_shutdown: list[Callable[[], Awaitable[Any]]] = []  # what services started on this kernel
        self.resources: dict[str, Any] = {}  # what services keep per kernel (e.g. the MCP endpoint), by name
        self._on_tick: list[Callable[[AgentOperatingSystem], Awaitable[list[Event]]]] = []  # e.g. alert rules
        self.counts = {"processed": 0, "failed": 0}  # events this process handled, for health and alerts
        self._stop = asyncio.Event()
        self._initialized = False
        self._registry: AgentRegistry | None = None
        self._routes_seen: tuple[str | None, int] = (None, 0)  # registry generation (ETag, number) routed by
        self._routes_here: set[int] = set()  # generations of changes made here, routed by, beyond a gap in those seen
        self._agent_types = AgentTypes()  # agents addressed lately, while the generation routed by holds
        self._handing_on: set[tuple[str, str]] = set()  # (agent, outbox entry) being submitted here
        self._live_records: dict[str, AgentRecord] = {}  # live agents' registry records as last read or saved here
        self._record_routes: dict[str, list[str]] = {}  # agent id -> ids of the subscriptions its record gives
        self._routes_lock = asyncio.Lock()
        self._pending_types: list[tuple[str, Any]] = []
        self._watchdog: LoopWatchdog | None = None
        dispatch = self.config.dispatch
        self._durable = dispatch.durability == "commit"
        self.dispatcher = LocalDispatcher(self, self.clock, max_live=dispatch.max_live_agents,
                                          idle_timeout=dispatch.idle_timeout)
        self.lifecycle = LifecycleManager(self.clock, self.config.lifecycle, supervisor=self)

    # --- set-up --------------------------------------------------------------------------------------

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError("AgentOperatingSystem.initialize() has not run")
        return self._store

    @property
    def bus(self) -> EventBus:
        if self._bus is None:
            raise RuntimeError("AgentOperatingSystem.initialize() has not run")
        return self._bus

    @property
    def reasoner(self) -> Any:
        """The reasoner agents of this kernel think with, built from its `ml` settings on first use."""
        if self._reasoner is None:
            self._reasoner = build_reasoner(self.config, self.clock, self.breakers)
        return self._reasoner

    @property
    def registry(self) -> AgentRegistry:
        if self._registry is None:
            raise RuntimeError("AgentOperatingSystem.initialize() has not run")
        return self._registry

    async def initialize(self) -> None:
        """Open storage and the bus, load agent types and configured agents, start them in dependency order."""
        if self._initialized:
            return
        if self._store is None:
            self._store = await build_state_store(self.config)
            self._owned.append(self._store)
        if self._bus is None:
            self._bus = await build_event_bus(self.config, self.clock)
            self._owned.append(self._bus)
        self._registry = AgentRegistry(self._store)
        self.scheduler = Scheduler(self.clock, self._store, self._emit_scheduled)
        self.workflows = WorkflowEngine(self._store, self.clock, self.ids)
        self.workflows.register_action("event", self._workflow_event)
        self.records = EventRecords(self._store, self.clock)
        if self.audit is None:
            self.audit = await build_audit_log(self.config, self.clock)
            if self.audit is not None:
                self._owned.append(self.audit)
        if self.policy is None:
            self.policy = build_policy(self.config, self.clock, self.audit, self._store)
        alerts = build_alerts(self.config, self.audit, self.clock, self.ids, self._store)
        if alerts is not None:
            self.on_tick(alerts)
        self.idempotency: IdempotencyKeys = build_idempotency(self.config, self._store, self.clock)
        self._initialized = True
        use_context_store(self._store)  # ContextMCPServer(agent_id) created in this context shares it
        if self.config.agents.builtin_types:
            for name, agent_class in builtin_agent_types():
                self.register_type(agent_class, name)
        if self.config.agents.load_entry_points:
            for name, agent_class in entry_point_agent_types():
                self.register_type(agent_class, name)
        for name, path in self.config.agents.types.items():
            self.register_type(import_agent_type(path), name)
        for name, agent_class in self._pending_types:
            self.register_type(agent_class, name)
        specs = {spec.id: spec for spec in self.config.agents.instances}
        # Dependencies outside the config are checked by register_agent, with its clear error.
        for key in topological_order({k: [d for d in s.depends_on if d in specs] for k, s in specs.items()}):
            spec = specs[key]
            await self.register_agent(spec.type, agent_id=spec.id, config=spec.config, depends_on=spec.depends_on,
                                      start=True)
        seen = await self.registry.generation()  # read first: a change made while restoring is seen next time
        await self._restore_subscriptions()
        self._routes_seen_at(seen.etag if seen else None, int(seen.value["generation"]) if seen else 0)
        for spec in self.config.schedules:
            if spec.enabled:
                self.scheduler.add(spec)
        self._watchdog = LoopWatchdog(asyncio.get_running_loop(), self.config.dispatch.block_threshold,
                                      self._on_stall)
        self._watchdog.start()
        loops = [self.lifecycle.run(self._stop), self.dispatcher.run(self._stop)]
        if not self.hosted:  # hosted: the timer trigger calls tick()
            loops.append(self.scheduler.run(self._stop))
        for loop in loops:
            self._loops.add(asyncio.ensure_future(loop))
        self._spawn(self.workflows.resume_all())

    async def _require_initialized(self) -> None:
        if not self._initialized:
            await self.initialize()

    async def tick(self, now: datetime | None = None) -> list[Event]:
        """Fire every schedule due at `now` (the timer trigger's time; a missed run catches up once), then the
        tick hooks (alert rules), whose events are routed like any other. Returns every event emitted."""
        await self._require_initialized()
        emitted = await self.scheduler.run_due(now)
        for hook in self._on_tick:
            for event in await hook(self):
                await self.submit(event, topic="alerts", actor="aos:alerts")
                emitted.append(event)
        # Housekeeping, a page per tick: old event records and expired idempotency keys.
        await self.records.purge(self.config.api.event_retention)
        await self.idempotency.purge_expired()
        return emitted

    def on_tick(self, hook: Callable[[AgentOperatingSystem], Awaitable[list[Event]]]) -> None:
        """Run `hook(aos)` on every tick after the schedules; the events it returns are submitted."""
        self._on_tick.append(hook)

    async def _audit(self, actor: str, action: str, subject: str, payload: Any = None) -> None:
        if self.audit is not None:
            await self.audit.append(actor, action, subject, payload)

    async def _emit_scheduled(self, event: Event) -> EventRecord:
        return await self.submit(event, topic="schedule")

    async def _workflow_event(self, step_input: Any, deps: dict[str, Any]) -> list[dict[str, Any]]:
        event = Event.model_validate(step_input)
        direct = event.subject is not None and not self.router.route(event)
        record = await self.submit(event, to_agent=event.subject if direct else None, actor="aos:workflows")
        failed = [r for r in record.results if r["status"] in ("failed", "rejected")]
        if failed:
            raise RuntimeError(f"event {event.id} failed at {failed[0]['agent_id']}: {failed[0].get('error')}")
        return list(record.results)

    def _on_stall(self, stall: Stall) -> None:
        # On the watchdog thread: log and count now; audit and alert from the loop once it turns again.
        if stall.agent_id is None:  # a busy loop (much work at once, a starved machine), not a handler's fault
            if not stall.ongoing:
                why = "the machine gave it too little CPU" if stall.starved else "busy, no agent handler held it"
                log.warning("the kernel loop did not turn for %.1fs (%s)", stall.seconds, why)
            return
        who = f"agent {stall.agent_id} handling event {stall.event_id}"
        if stall.ongoing:
            log.error("the kernel loop has been blocked for %.1fs by %s", stall.seconds, who)
            return
        log.error("the kernel loop was blocked for %.1fs by %s", stall.seconds, who)
        self.telemetry.increment(LOOP_BLOCKED, agent=stall.agent_id)
        if not self._stop.is_set():
            self._loop_call(lambda: self._spawn(self._alert_stall(stall)))

    def _loop_call(self, callback: Callable[[], None]) -> None:
        if self._watchdog is not None:
            try:
                self._watchdog.loop.call_soon_threadsafe(callback)
            except RuntimeError:  # the loop is closed: nothing left to tell
                pass

    async def _alert_stall(self, stall: Stall) -> None:
        data = {"agent_id": stall.agent_id, "event_id": stall.event_id, "seconds": round(stall.seconds, 3)}
        await self._audit("aos:watchdog", "agent.blocked_loop", f"agent/{stall.agent_id}", data)
        await self.submit(Event(type="aos.alert.loop_blocked", source="aos/watchdog", data=data),
                          topic="alerts", actor="aos:watchdog")

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def run_until_idle(self) -> None:
        """Wait until every message agents sent has been handled (background loops excluded)."""
        while busy := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(busy)

    def on_shutdown(self, stop: Callable[[], Awaitable[Any]]) -> None:
        """Have `shutdown` await `stop()` first (for services that run on this kernel, like the MCP endpoint)."""
        self._on_shutdown.append(stop)

    async def shutdown(self) -> None:
        """Stop background loops, save every live agent (dependents first), and close what the kernel opened."""
        if not self._initialized:
            return
        if context_store() is self._store:
            use_context_store(None)
        self._stop.set()
        if self._watchdog is not None:
            self._watchdog.stop()
        while self._on_shutdown:
            await self._on_shutdown.pop()()
        await self.run_until_idle()
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        live = self.dispatcher.live_ids()
        order = [k for k in reversed(topological_order({k: self._deps.get(k, ()) for k in live} |
                                                      {d: () for k in live for d in self._deps.get(k, ())}))
                 if k in live]
        for key in order:
            agent = self.dispatcher.live_agent(key)
            await self.dispatcher.drop(key)
            if agent is not None:
                await agent.shutdown()
        for resource in reversed(self._owned):
            await resource.close()
        self._initialized = False

