"""PurposeDrivenAgent: a perpetual agent with a purpose and goals whose progress can be measured."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, Field

from agents.perpetual import PerpetualAgent

if TYPE_CHECKING:
    from agents.thinking import Budget, Thought
    from agents.toolbox import Tool, Toolbox
    from aos_core.agent_context import AgentContext
    from aos_core.events import Event
    from aos_core.ports import JSON
    from services.knowledge import KnowledgeBase
    from services.mcp.client import McpClients
    from services.ml import AdapterVersion, Reasoner, ReasoningResult


class Goal(BaseModel):
    """A measurable goal: the metric `metric` should reach `target` (at least, or at most)."""

    id: str
    description: str = ""
    metric: str
    target: int | float
    direction: Literal["at_least", "at_most"] = "at_least"
    baseline: int | float = Field(default=0, description="where progress is measured from")
    measured_over: str | None = Field(
        default=None, description="the metric counting what this goal is about (e.g. departments that spent); "
                                  "while it is 0 or unset there is nothing to measure: the goal is not met")


def percent(fraction: float) -> int:
    """A 0..1 fraction as a whole percent, halves rounded up, so every reader shows the same figure."""
    return int(fraction * 100 + 0.5)


def _number(value: float) -> int | float:
    # Counts stay integers (3, not 3.0) in the state, the API and the dashboard.
    return int(value) if isinstance(value, bool | int) or float(value).is_integer() else float(value)


class PurposeDrivenAgent(PerpetualAgent):
    """The agents AOS users write: `super().__init__(agent_id="ceo", purpose="...", adapter_name="ceo")`.

    Metrics live in the state (`state["metrics"]`), so progress survives restarts like everything else; after
    each event the goals' progress is kept in `state["progress"]` too, so readers of the context (the API,
    the dashboard) see it without loading the agent. `adapter_name` names the LoRA adapter the agent reasons
    with. Purpose, adapter and goals come from the constructor, else config, else the class's `default_*`.
    """

    default_purpose: ClassVar[str] = ""
    default_adapter: ClassVar[str | None] = None
    default_goals: ClassVar[tuple[Goal | dict[str, Any], ...]] = ()

    def __init__(
        self,
        agent_id: str,
        purpose: str = "",
        *,
        adapter_name: str | None = None,
        goals: Iterable[Goal | dict[str, Any]] = (),
        config: dict[str, Any] | None = None,
        capabilities: Iterable[str] | None = None,
        depends_on: Iterable[str] = (),
    ) -> None:
        super().__init__(agent_id, config=config, capabilities=capabilities, depends_on=depends_on)
        self.purpose = purpose or str(self.config.get("purpose") or self.default_purpose)
        self.adapter_name = adapter_name or self.config.get("adapter_name") or self.default_adapter
        self.goals = [g if isinstance(g, Goal) else Goal.model_validate(g)
                      for g in (goals or self.config.get("goals") or self.default_goals)]

    def initial_state(self) -> dict[str, Any]:
        # Progress is in the state from the start, so the dashboard shows a new agent's goals before its first event.
        return {"metrics": {}, "progress": self.evaluate_progress({})}

    @property
    def metrics(self) -> dict[str, int | float]:
        return self.state.setdefault("metrics", {})

    def record_metric(self, name: str, value: float) -> None:
        self.metrics[name] = _number(value)

    def increment_metric(self, name: str, by: float = 1) -> int | float:
        self.metrics[name] = _number(self.metrics.get(name, 0) + by)
        return self.metrics[name]

    def evaluate_progress(self, metrics: dict[str, int | float] | None = None) -> dict[str, Any]:
        """Each goal's current value, progress (0..1, and as a whole `percent`), whether it is measured yet and
        met, and the mean progress over all goals (a goal with nothing to measure counts as 0)."""
        metrics = self.metrics if metrics is None else metrics
        report = []
        for goal in self.goals:
            current = _number(metrics.get(goal.metric, goal.baseline))
            measured = goal.measured_over is None or metrics.get(goal.measured_over, 0) > 0
            span = goal.target - goal.baseline
            met = measured and (current >= goal.target if goal.direction == "at_least" else current <= goal.target)
            if met or span == 0 or not measured:
                progress = 1.0 if met else 0.0
            else:
                progress = max(0.0, min(1.0, (current - goal.baseline) / span))
            report.append({"id": goal.id, "metric": goal.metric, "target": goal.target, "current": current,
                           "progress": progress, "percent": percent(progress), "measured": measured, "met": met})
        overall = sum(g["progress"] for g in report) / len(report) if report else 1.0
        return {"purpose": self.purpose, "goals": report, "overall": overall, "percent": percent(overall)}

    async def handle(self, event: Event, ctx: AgentContext) -> JSON:
        result = await super().handle(event, ctx)
        self.state["progress"] = self.evaluate_progress()  # committed with the event's own write
        return result

    # --- reasoning with the agent's LoRA adapter ----------------------------------------------------

    reasoner: Reasoner | None = None  # None: the kernel's (its `ml` settings), or one built from the settings

    def own_reasoner(self) -> Reasoner:
        """The reasoner this agent thinks with: its own if set, else its kernel's, else (an agent used without a
        kernel) one built from the `ml` settings and kept for this agent."""
        if self.reasoner is None:
            if self.host is not None:
                return self.host.reasoner  # type: ignore[no-any-return]
            from aos_core.config import AOSConfig
            from aos_core.runtime import build_reasoner

            self.reasoner = build_reasoner(AOSConfig(), self._clock)
        return self.reasoner

    async def resolve_adapter(self) -> AdapterVersion | None:
        """The production version of `adapter_name`, read from the registry now (None: no adapter or none
        in production), so a promotion or rollback takes effect on the next call without a restart."""
        if not self.adapter_name:
            return None
        from services.ml import AdapterRegistry

        store = self._store or (self.context.store if self.context is not None else None)
        if store is None:
            raise RuntimeError(f"agent {self.agent_id}: call initialize() before reasoning with an adapter")
        return await AdapterRegistry(store, clock=self._clock).production(self.adapter_name)

    async def reason(self, prompt: str, *, system: str | None = None, **parameters: Any) -> ReasoningResult:
        """Ask the reasoner with the adapter version in production at this moment (`name@version` in the result)."""
        from services.ml import ReasoningRequest

        adapter = await self.resolve_adapter()
        request = ReasoningRequest(prompt=prompt, adapter=adapter.ref if adapter else None,
                                   system=self.purpose if system is None else system, parameters=parameters)
        return await self.own_reasoner().reason(request)

    # --- thinking with tools: the durable model-and-tools loop (agents.thinking) ---------------------

    knowledge: KnowledgeBase | None = None  # searched by the `aos_search_knowledge` tool; config `knowledge_path`
    _mcp: McpClients | None = None

    def tools(self) -> list[Tool]:
        """The agent's own tools for its model (override to add some); `think` adds the OS and MCP tools."""
        return []

    async def mcp_clients(self) -> McpClients:
        """The MCP servers of config `mcp_servers`, connected on first use and kept until the agent sleeps."""
        if self._mcp is None:
            from aos_core.config import AOSConfig
            from aos_core.runtime import build_secret_store
            from services.mcp.client import McpClients

            config = self.host.config if self.host is not None else AOSConfig()
            self._mcp = McpClients.for_agent(self.config, config, secrets=build_secret_store(config),
                                             clock=self._clock,
                                             breakers=self.host.breakers if self.host is not None else None)
        return self._mcp

    async def toolbox(self) -> Toolbox:
        """What the model may call: the OS tools scoped to this agent, its MCP servers' tools, its own tools."""
        from agents.toolbox import Toolbox, mcp_tools, os_tools

        if self.knowledge is None and self.config.get("knowledge_path"):
            from services.knowledge import KnowledgeBase

            self.knowledge = KnowledgeBase(str(self.config["knowledge_path"]), clock=self._clock)
        box = Toolbox(os_tools(self))
        if self.config.get("mcp_servers"):
            for item in await mcp_tools(await self.mcp_clients()):
                box.add(item)
        for item in self.tools():
            box.add(item)
        return box

    async def think(self, task: str, *, tools: Iterable[Tool] = (), budget: Budget | None = None,
                    system: str | None = None, loop: str = "main", **parameters: Any) -> Thought:
        """Let the model work on `task` with the agent's tools until it answers or a budget stops it.

        Call it while handling an event: each step is committed before the next, so a redelivered event
        resumes from the last committed step (agents.thinking). `budget` defaults to config `reasoning`
        (`max_steps`, `max_tokens`, `max_seconds`); `loop` names the loop when a handler runs more than one.
        """
        from agents.thinking import Budget, ToolLoop

        adapter = await self.resolve_adapter()
        box = await self.toolbox()
        for item in tools:
            box.add(item)
        limits = budget or Budget.model_validate(self.config.get("reasoning") or {})
        runner = ToolLoop(self, self.own_reasoner(), box, limits, adapter=adapter.ref if adapter else None,
                          system=self.purpose if system is None else system, loop=loop, parameters=parameters)
        return await runner.run(task)

    async def sleep(self) -> None:
        await super().sleep()
        if self._mcp is not None:
            mcp, self._mcp = self._mcp, None
            await mcp.close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "purpose": self.purpose, "adapter_name": self.adapter_name,
                "goals": [g.model_dump() for g in self.goals]}
