"""Registration and routing: which agents exist, what they depend on, and which events reach them.

Agent types live in memory; agent records in the registry (`aos_core/registry.py`). Every change routing depends
on bumps the registry generation, and `_routes_current` brings this worker's router up to it before each event,
so an agent registered through any worker gets its events from every worker. `AgentOperatingSystem` mixes this in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from aos_core.errors import RegistrationError
from aos_core.events import AgentId, validate_id
from aos_core.generations import changed_since
from aos_core.graph import topological_order
from aos_core.lifecycle import AgentState, Lifecycle, LifecycleManager
from aos_core.ports import Agent, Clock
from aos_core.registry import AgentRecord, AgentRegistry
from aos_core.router import Router, Subscription

if TYPE_CHECKING:
    import asyncio

    from aos_core.config import AOSConfig
    from aos_core.dispatch import LocalDispatcher


class AgentRegistration:
    """Agent types, agent records, dependencies and subscriptions (a mixin of AgentOperatingSystem)."""

    config: AOSConfig
    clock: Clock
    router: Router
    dispatcher: LocalDispatcher
    lifecycle: LifecycleManager
    _registry: AgentRegistry | None
    _pinned: dict[str, Agent]
    _deps: dict[str, tuple[str, ...]]
    _routes_seen: tuple[str | None, int]
    _routes_here: set[int]
    _record_routes: dict[str, list[str]]
    _routes_lock: asyncio.Lock
    _pending_types: list[tuple[str, Any]]
    _durable: bool

    if TYPE_CHECKING:  # provided by AgentOperatingSystem and AgentHosting
        @property
        def registry(self) -> AgentRegistry: ...

        async def agent_type(self, agent_id: str) -> str: ...

        async def _require_initialized(self) -> None: ...

        async def _audit(self, actor: str, action: str, subject: str, payload: Any = None) -> None: ...

        async def _address(self, agent_id: str) -> AgentId: ...

        async def _persist_lifecycle(self, agent_id: str, lifecycle: Lifecycle,
                                     record: AgentRecord | None = None) -> None: ...

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
            await self._changed_here(agent_id)  # every worker routes to it from its next event
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
        # Its ETag first: on every event, unlike the document (the last 256 changes, ~5 KB to read and decode).
        if await self.registry.generation_etag() in (None, self._routes_seen[0]):
            return
        doc = await self.registry.generation()
        if doc is None or doc.etag == self._routes_seen[0]:
            return
        async with self._routes_lock:
            ids = changed_since(doc.value, self._routes_seen[1])
            if ids is None:  # further behind than the changes kept: reload them all
                ids = [record.id async for record in self.registry.iterate()]
            for agent_id in ids:
                await self._reload_routes(agent_id)
            if int(doc.value["generation"]) >= self._routes_seen[1]:
                self._routes_seen_at(doc.etag, int(doc.value["generation"]))

    async def _changed_here(self, agent_id: str) -> None:
        """Bump the registry generation for a change this worker has routed by already, and count it as seen.

        Without this, a worker that registered more agents than the generation document names (a bulk
        registration) reloaded every agent record at its next event, although it had all the changes: 23 s with
        100,000 agents. Only numbers that follow the one seen without a gap count: a change another worker made
        in between is reloaded by the next `_routes_current`, with those after it."""
        self._routes_here.add(await self.registry.changed(agent_id))
        self._advance_routes_seen()

    def _routes_seen_at(self, etag: str | None, generation: int) -> None:
        """Routing is current up to the registry generation read (`etag`, `generation`), and up to this worker's
        own changes that follow it without a gap."""
        self._routes_seen = (etag, generation)
        self._routes_here = {n for n in self._routes_here if n > generation}
        self._advance_routes_seen()

    def _advance_routes_seen(self) -> None:
        seen = self._routes_seen[1]
        while seen + 1 in self._routes_here:
            seen += 1
            self._routes_here.discard(seen)
        if seen != self._routes_seen[1]:
            self._routes_seen = (None, seen)  # its ETag is not known: the next read compares numbers

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
        """A perpetual agent's context document as committed, without loading it; None for agents that keep no
        context. NotFoundError for an unknown agent.

        An agent live here shows its live state (a new agent's initial state included) only while no other
        instance has committed since this copy was loaded; otherwise the stored context is read. With write-behind
        (`dispatch.durability` memory), or for an agent registered as an object in this process, the live state
        is the one to show."""
        await self._require_initialized()
        agent = self._pinned.get(agent_id) or self.dispatcher.live_agent(agent_id)
        context = getattr(agent, "context", None)
        if agent is not None and context is None:
            return None
        if context is not None and (agent_id in self._pinned or not self._durable or await context.is_current()):
            return context.snapshot()
        agent_type = agent.agent_type if agent is not None else await self.agent_type(agent_id)
        agent_class = self.registry.agent_class(agent_type) if self.registry.has_type(agent_type) else None
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
        await self._changed_here(agent_id)
        await self._audit(actor, "agent.terminated", f"agent/{agent_id}", {"reason": reason})


def _module_type_name(agent_class: Any, name: str) -> str:
    """`<module>.<name>` as an agent type (lower case, URL-safe, at most 63 characters)."""
    module = re.sub(r"[^a-z0-9_-]+", "_", agent_class.__module__.rsplit(".", 1)[-1].lower()).strip("_-") or "app"
    return f"{module[: 62 - len(name)]}.{name}"[-63:].lstrip("._-")
