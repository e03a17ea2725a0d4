"""AgentOperatingSystem: registers agents, routes events to them, and keeps them alive."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from aos_core.agent_context import AgentContext, Outgoing
from aos_core.clock import SystemClock, UuidIds
from aos_core.config import AOSConfig
from aos_core.dispatch import LocalDispatcher
from aos_core.errors import (
    AgentUnavailableError,
    InvalidEventError,
    NotFoundError,
    RegistrationError,
)
from aos_core.etag import retry_on_conflict
from aos_core.event_records import EventRecord, EventRecords
from aos_core.events import AgentId, Event, validate_id
from aos_core.generations import changed_since
from aos_core.graph import topological_order
from aos_core.intake import EventIntake
from aos_core.lifecycle import AgentState, Lifecycle, LifecycleManager
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
from aos_core.registry import AgentRecord, AgentRegistry
from aos_core.router import Router, Subscription
from aos_core.runtime import (
    build_alerts,
    build_audit_log,
    build_event_bus,
    build_idempotency,
    build_policy,
    build_state_store,
    builtin_agent_types,
    entry_point_agent_types,
    import_agent_type,
    runtime_default_is,
    set_default_state_store,
)
from aos_core.scheduler import Scheduler
from aos_core.telemetry import (
    EVENTS_PROCESSED,
    HANDLING_DURATION,
    LOOP_BLOCKED,
    SPAN_HANDLER,
    NoTelemetry,
)
from aos_core.watchdog import LoopWatchdog, Stall
from aos_core.workflow import WorkflowEngine

log = logging.getLogger("aos.kernel")


class AgentOperatingSystem(EventIntake):
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
        self.router = Router()
        self._pinned: dict[str, Agent] = {}
        self._deps: dict[str, tuple[str, ...]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # messages agents sent, being delivered
        self._inflight: dict[tuple[str, str], asyncio.Future[AgentResult]] = {}  # (event id, agent) delivering
        self._loops: set[asyncio.Task[Any]] = set()  # scheduler, lifecycle and eviction loops
        self._on_shutdown: list[Callable[[], Awaitable[Any]]] = []  # what services started on this kernel
        self._on_tick: list[Callable[[AgentOperatingSystem], Awaitable[list[Event]]]] = []  # e.g. alert rules
        self.counts = {"processed": 0, "failed": 0}  # events this process handled, for health and alerts
        self._stop = asyncio.Event()
        self._initialized = False
        self._registry: AgentRegistry | None = None
        self._routes_seen: tuple[str | None, int] = (None, 0)  # registry generation (ETag, number) routed by
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
        set_default_state_store(self._store)
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
        self._routes_seen = (seen.etag, int(seen.value["generation"])) if seen else (None, 0)
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

    # --- registration --------------------------------------------------------------------------------

    def register_type(self, agent_class: Any, name: str | None = None) -> str:
        """Make an agent class available by type name; its `subscriptions` become type subscriptions."""
        name = name or agent_class.agent_type
        if (self._registry is not None and name == agent_class.agent_type and self._registry.has_type(name)
                and getattr(agent_class, "type_named_by_class", False)
                and self._registry.agent_class(name) is not agent_class):
            # A class that did not declare its type meets another class of that name (a user's CEOAgent beside
            # the built-in ceo): it gets a name of its own, from its module, instead of failing.
            name = _module_type_name(agent_class, name)
        if self._registry is None:
            self._pending_types.append((name, agent_class))
            return name
        if self._registry.has_type(name):
            self._registry.register_type(name, agent_class)  # raises if another class has the name
            return name
        self._registry.register_type(name, agent_class)
        for pattern in getattr(agent_class, "subscriptions", ()):
            self.router.add(Subscription(pattern, name))
        return name

    async def register_agent(
        self,
        agent_or_type: Agent | type | str,
        *,
        agent_id: str | None = None,
        config: dict[str, Any] | None = None,
        depends_on: Iterable[str] | None = None,
        subscribe: Iterable[str] = (),
        start: bool | None = None,
        actor: str = "kernel",
    ) -> AgentId:
        """Register an agent object (kept live), or an agent type and an id (loaded on its first event).

        Dependencies must be registered first; a cycle or a missing one raises RegistrationError and
        registers nothing. `subscribe` adds event type patterns this one agent receives (kept in its record).
        `actor` is who asked, for the audit log.
        """
        await self._require_initialized()
        agent: Agent | None = None
        if isinstance(agent_or_type, str):
            type_name = agent_or_type
            agent_class = self.registry.agent_class(type_name)
        elif isinstance(agent_or_type, type):
            type_name = self.register_type(agent_or_type)
            agent_class = agent_or_type
        else:
            agent = agent_or_type
            type_name = self.register_type(type(agent), agent.agent_type)
            agent.agent_type = type_name  # type: ignore[misc]
            agent_class = type(agent)
            agent_id = agent.agent_id
        if agent_id is None:
            raise RegistrationError("register_agent needs agent_id when given an agent type")
        validate_id(agent_id, "agent id")
        config = dict(config or {})
        if subscribe:  # kept in the record, so every worker and every restart routes to this agent too
            config["subscribe"] = list(dict.fromkeys([*config.get("subscribe", ()), *subscribe]))
        deps = tuple(depends_on if depends_on is not None else (agent.depends_on if agent else
                                                                 config.get("depends_on", ())))
        await self._check_dependencies(agent_id, deps)
        capabilities = list(dict.fromkeys([*getattr(agent_class, "capabilities", ()),
                                           *(agent.all_capabilities if agent else config.get("capabilities", ()))]))
        existing = await self.registry.get(agent_id)
        if existing is not None and "subscribe" in existing.config and "subscribe" not in config:
            config["subscribe"] = list(existing.config["subscribe"])  # registering again keeps its subscriptions
        record = AgentRecord(id=agent_id, type=type_name, config=config, depends_on=list(deps),
                             capabilities=capabilities, created_at=self.clock.now().isoformat())
        if existing is not None and existing.state == AgentState.TERMINATED:
            raise RegistrationError(f"agent {agent_id!r} was terminated; choose another id")
        stored = await self.registry.add(record)
        if existing is not None and (stored.config != config or stored.depends_on != list(deps)
                                     or stored.capabilities != capabilities):
            stored.config, stored.depends_on, stored.capabilities = config, list(deps), capabilities
            await self.registry.save(stored)
        if deps:
            self._deps[agent_id] = deps
        self._route_record(agent_id, type_name, config.get("subscribe", ()))
        if existing is None or stored.etag != (existing.etag if existing else None):
            await self.registry.changed(agent_id)  # every worker routes to it from its next event
        if existing is None:
            await self._audit(actor, "agent.registered", f"agent/{agent_id}",
                              {"type": type_name, "config": config, "depends_on": list(deps)})
        if agent is not None:
            self._pinned[agent_id] = agent
        if agent is not None or start:
            await self.dispatcher.ensure_live(AgentId(type_name, agent_id))
        return AgentId(type_name, agent_id)

    async def _restore_subscriptions(self) -> None:
        # Agents registered at run time (over HTTP, by another worker) keep their own subscriptions in the
        # registry; a fresh process must route to them too.
        configured = {spec.id for spec in self.config.agents.instances}
        async for record in self.registry.iterate():
            if record.id in configured or record.state == AgentState.TERMINATED:
                continue
            if record.depends_on:
                self._deps[record.id] = tuple(record.depends_on)
            self._route_record(record.id, record.type, record.config.get("subscribe", ()))

    def _route_record(self, agent_id: str, agent_type: str, patterns: Iterable[str]) -> None:
        # The subscriptions an agent's record gives, replacing the ones it gave before.
        for sub_id in self._record_routes.pop(agent_id, ()):
            self.router.remove(sub_id)
        subs = [self.router.add(Subscription(pattern, agent_type, agent_id)) for pattern in patterns]
        if subs:
            self._record_routes[agent_id] = [s.id for s in subs]

    async def _routes_current(self) -> None:
        """Bring routing up to the registry generation: reload the agents any worker changed since last time."""
        doc = await self.registry.generation()
        if doc is None or doc.etag == self._routes_seen[0]:
            return
        async with self._routes_lock:
            ids = changed_since(doc.value, self._routes_seen[1])
            if ids is None:  # further behind than the changes kept: reload them all
                ids = [record.id async for record in self.registry.iterate()]
            for agent_id in ids:
                await self._reload_routes(agent_id)
            if int(doc.value["generation"]) > self._routes_seen[1]:
                self._routes_seen = (doc.etag, int(doc.value["generation"]))

    async def _reload_routes(self, agent_id: str) -> None:
        record = await self.registry.get(agent_id)
        if record is None or record.state == AgentState.TERMINATED:
            self._route_record(agent_id, "", ())
            self.router.remove_agent(agent_id)
            self._deps.pop(agent_id, None)
            if record is not None and (self.dispatcher.is_live(agent_id) or self.lifecycle.get(agent_id)):
                await self.dispatcher.drop(agent_id, save=False)
                self.lifecycle.forget(agent_id)
                self._pinned.pop(agent_id, None)
            return
        if record.depends_on:
            self._deps[agent_id] = tuple(record.depends_on)
        self._route_record(agent_id, record.type, record.config.get("subscribe", ()))

    async def _check_dependencies(self, agent_id: str, deps: tuple[str, ...]) -> None:
        for dep in deps:
            if dep == agent_id or (dep not in self._pinned and await self.registry.get(dep) is None):
                raise RegistrationError(f"{agent_id!r} depends on {dep!r}, which is not registered")
        graph = {**self._deps, agent_id: deps}
        for needs in list(graph.values()):  # registered agents without dependencies are leaves
            for dep in needs:
                graph.setdefault(dep, ())
        topological_order(graph)

    def subscribe(self, event_type: str, *, agent_type: str | None = None, agent_id: str | None = None,
                  topic: str | None = None) -> Subscription:
        """Route events of `event_type` (a glob) to one agent, or to the agent of `agent_type` named by subject."""
        if agent_type is None:
            raise ValueError("subscribe needs agent_type (and agent_id for a single agent)")
        return self.router.add(Subscription(event_type, agent_type, agent_id, topic))

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

    def _perpetual(self, target: AgentId) -> bool:
        if target.key in self._pinned:
            return False  # an object registered in this process lives here
        agent_class = self.registry.agent_class(target.type) if self.registry.has_type(target.type) else None
        return bool(getattr(agent_class, "perpetual", False))

    async def _audit(self, actor: str, action: str, subject: str, payload: Any = None) -> None:
        if self.audit is not None:
            await self.audit.append(actor, action, subject, payload)

    async def _address(self, agent_id: str) -> AgentId:
        agent = self._pinned.get(agent_id) or self.dispatcher.live_agent(agent_id)
        if agent is not None:
            return AgentId(agent.agent_type, agent_id)
        record = await self.registry.require(agent_id)
        return AgentId(record.type, agent_id)

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

    async def _send_outbox(self, sender: str, outbox: list[Outgoing]) -> None:
        if self.hosted:
            # Through the bus, whose triggers submit them: the message survives this process, and its
            # deterministic id lets the event records drop a copy if this handling runs again.
            for out in outbox:
                topic = self.config.messaging.topic(direct=out.to_agent is not None)
                await self.bus.publish(topic, self.telemetry.inject(out.event))
            return
        for out in outbox:
            self._spawn(self.submit(out.event, to_agent=out.to_agent, actor=f"agent:{sender}"))

    async def _start_workflows(self, sender: str, workflows: list[dict[str, Any]]) -> None:
        for spec in workflows:
            if self.orchestrations is None:
                log.warning("agent %s started workflow %s, but this kernel runs no orchestrations (they need the "
                            "local host or Azure Functions); it does not run", sender, spec["id"])
                continue
            definition = {k: v for k, v in spec.items() if k != "id"}
            await self.orchestrations.start(spec["id"], definition, started_by=f"agent:{sender}")

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
            agent.bind(self.store, clock=self.clock, dedupe_window=self.config.dispatch.dedupe_window)  # type: ignore[attr-defined]
        await agent.initialize()
        await self._settle_last_applied(agent)
        now = self.clock.now()
        if lifecycle.state == AgentState.CREATED:
            lifecycle.transition(AgentState.INITIALIZED, at=now)
        if lifecycle.state in (AgentState.INITIALIZED, AgentState.SLEEPING):
            lifecycle.transition(AgentState.RUNNING, at=now)
            await self._persist_lifecycle(key, lifecycle, record)
        self.lifecycle.track(key, lifecycle)
        return agent

    async def run_in_mailbox(self, target: AgentId, event: Event, *, fresh: bool = False) -> AgentResult:
        """Apply `event` to one agent, holding its mailbox: at most once, exactly.

        The result document stored here, before the mailbox is released, is the durable answer to "has this
        agent dealt with this event": a redelivery finds it and applies nothing. Only a crash between the
        agent's commit and that write can leave it out; the context then names the event as its last applied
        one, and `activate` writes the missing result before anything else runs.

        A handling that fails is retried after the agent's recovery back-off, up to `dispatch.max_attempts`
        times; then the event is failed with the reason and dead-lettered, and the agent goes on.
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
            except (NotFoundError, RegistrationError):
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
                async with asyncio.timeout(dispatch.handler_timeout):  # no extra task, unlike wait_for
                    status, result = await agent.process(event, ctx, durable=self._durable,
                                                         retries=dispatch.commit_retries)
        except InvalidEventError as exc:
            return AgentResult(agent.agent_id, "rejected", error=str(exc))
        except TimeoutError:
            return AgentResult(agent.agent_id, "failed",
                               error=f"the handler did not finish within {dispatch.handler_timeout:g}s")
        except Exception as exc:
            return AgentResult(agent.agent_id, "failed", error=f"{type(exc).__name__}: {exc}")
        if status == "duplicate":  # its commit landed before a crash that lost the result: say it is done
            status, result = "completed", None
        self.telemetry.increment(EVENTS_PROCESSED, type=event.type, status=status)
        self.counts["processed"] += 1
        self.telemetry.histogram(HANDLING_DURATION, self.clock.monotonic() - started, type=event.type)
        lifecycle = self.lifecycle.get(agent.agent_id)
        if lifecycle is not None and lifecycle.restarts:
            await self.lifecycle.record_success(agent.agent_id)
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

    async def _settle_last_applied(self, agent: Agent) -> None:
        # The one event whose commit may have landed without its result document (a crash in between) is the
        # last one the context names: write that result now, before any other event can follow it.
        context = getattr(agent, "context", None)
        last = getattr(context, "last_applied", None)
        if last is None or await self.records.has_result(last, agent.agent_id):
            return
        if await self.records.exists(last):
            await self.records.add_result(last, AgentResult(agent.agent_id, "completed", extra={"settled": True}))

    async def deactivate(self, agent: Agent) -> None:
        await agent.sleep()
        lifecycle = self.lifecycle.get(agent.agent_id)
        if lifecycle is not None and lifecycle.state == AgentState.RUNNING:
            await self.lifecycle.transition(agent.agent_id, AgentState.SLEEPING)
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
                                 ) -> None:
        first = [record]  # the caller's copy is tried once; after a lost race, the record is read again

        async def attempt() -> None:
            current = first.pop() if first else None
            current = current or await self.registry.get(agent_id)
            if current is not None:
                current.lifecycle = lifecycle.to_dict()
                await self.registry.save(current)

        await retry_on_conflict(attempt, key=f"registry/agents/{agent_id}", what="lifecycle update")

    # --- queries and control -------------------------------------------------------------------------

    async def get_agent(self, agent_id: str) -> dict[str, Any]:
        """An agent's record, lifecycle and whether it is live; NotFoundError if unknown."""
        await self._require_initialized()
        record = await self.registry.require(agent_id)
        info = record.to_dict()
        live = self.lifecycle.get(agent_id)
        if live is not None:
            info["lifecycle"] = live.to_dict()
        info["state"] = info["lifecycle"].get("state", AgentState.CREATED)
        info["live"] = self.dispatcher.is_live(agent_id)
        return info

    async def agent_state(self, agent_id: str) -> dict[str, Any] | None:
        """A perpetual agent's context snapshot (version, state, applied event ids); None for stateless agents."""
        await self._require_initialized()
        agent = await self.dispatcher.ensure_live(await self._address(agent_id))
        context = getattr(agent, "context", None)
        return context.snapshot() if context is not None else None

    async def read_context(self, agent_id: str) -> dict[str, Any] | None:
        """A perpetual agent's context document as committed (live state for a live agent), without loading it;
        None for agents that keep no context. NotFoundError for an unknown agent."""
        await self._require_initialized()
        agent = self._pinned.get(agent_id) or self.dispatcher.live_agent(agent_id)
        if agent is not None:
            context = getattr(agent, "context", None)
            return context.snapshot() if context is not None else None
        record = await self.registry.require(agent_id)
        agent_class = self.registry.agent_class(record.type) if self.registry.has_type(record.type) else None
        reader = getattr(agent_class, "read_context", None)
        return await reader(self.store, agent_id) if reader is not None else None

    async def list_agents(self, *, capability: str | None = None, agent_type: str | None = None,
                          state: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        await self._require_initialized()
        records = await self.registry.find(capability=capability, agent_type=agent_type, state=state, limit=limit)
        return [{**r.to_dict(), "state": r.state, "live": self.dispatcher.is_live(r.id)} for r in records]

    async def terminate_agent(self, agent_id: str, reason: str = "terminated on request", *,
                              actor: str = "kernel") -> None:
        """Stop an agent for good: it is saved, shut down, unsubscribed, and refuses further events."""
        await self._require_initialized()
        record = await self.registry.require(agent_id)
        dependents = [k for k, deps in self._deps.items() if agent_id in deps and k != agent_id]
        if dependents:
            raise RegistrationError(f"cannot terminate {agent_id!r}: {', '.join(sorted(dependents))} depend on it")
        agent = self.dispatcher.live_agent(agent_id)
        await self.dispatcher.drop(agent_id)
        if agent is not None:
            await agent.shutdown()
            record = await self.registry.require(agent_id)  # eviction just recorded it as sleeping
        lifecycle = self.lifecycle.get(agent_id) or (Lifecycle.from_dict(record.lifecycle) if record.lifecycle
                                                     else Lifecycle())
        lifecycle.transition(AgentState.TERMINATED, at=self.clock.now(), reason=reason)
        self.lifecycle.forget(agent_id)
        await self._persist_lifecycle(agent_id, lifecycle)
        self.router.remove_agent(agent_id)
        self._record_routes.pop(agent_id, None)
        self._pinned.pop(agent_id, None)
        self._deps.pop(agent_id, None)
        await self.registry.changed(agent_id)
        await self._audit(actor, "agent.terminated", f"agent/{agent_id}", {"reason": reason})

    def on_shutdown(self, stop: Callable[[], Awaitable[Any]]) -> None:
        """Have `shutdown` await `stop()` first (for services that run on this kernel, like the MCP endpoint)."""
        self._on_shutdown.append(stop)

    async def shutdown(self) -> None:
        """Stop background loops, save every live agent (dependents first), and close what the kernel opened."""
        if not self._initialized:
            return
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
        if self._owned and runtime_default_is(self._store):
            set_default_state_store(None)
        self._initialized = False


def _module_type_name(agent_class: Any, name: str) -> str:
    """`<module>.<name>` as an agent type (lower case, URL-safe, at most 63 characters)."""
    module = re.sub(r"[^a-z0-9_-]+", "_", agent_class.__module__.rsplit(".", 1)[-1].lower()).strip("_-") or "app"
    return f"{module[: 62 - len(name)]}.{name}"[-63:].lstrip("._-")
