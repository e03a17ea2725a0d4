"""BaseAgent: an id, a type, capabilities, and a handler for events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from aos_core import strict_json
from aos_core.events import AgentId, Event, validate_id
from aos_core.ports import JSON

if TYPE_CHECKING:
    from aos_core.agent_context import AgentContext

_encode = strict_json.encoder()  # checks a handler's result: stored with the event, it must be JSON


def _snake(name: str) -> str:
    # OrderDeskAgent -> order_desk; an acronym stays one word: CEOAgent -> ceo, HTTPGatewayAgent -> http_gateway
    name = name.removesuffix("Agent") or name
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


class BaseAgent:
    """An agent that handles events in-process and keeps nothing between calls.

    Subclasses set `agent_type` (defaults to the class name in snake case without "Agent"),
    `capabilities` (for discovery), `subscriptions` (event type globs every agent of this type receives,
    the agent picked by the event's `subject`), and implement `handle_event` (or `handle` for the context).
    """

    agent_type: ClassVar[str] = ""
    capabilities: ClassVar[tuple[str, ...]] = ()
    subscriptions: ClassVar[tuple[str, ...]] = ()
    perpetual: ClassVar[bool] = False

    type_named_by_class: ClassVar[bool] = False  # agent_type was derived from the class name, not declared

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_named_by_class = "agent_type" not in cls.__dict__
        if cls.type_named_by_class:
            cls.agent_type = _snake(cls.__name__)

    def __init__(
        self,
        agent_id: str,
        *,
        config: dict[str, Any] | None = None,
        capabilities: Iterable[str] | None = None,
        depends_on: Iterable[str] = (),
    ) -> None:
        validate_id(self.agent_type or "base", "agent type")
        self.agent_id = validate_id(agent_id, "agent id")
        self.config: dict[str, Any] = dict(config or {})
        self.instance_capabilities: tuple[str, ...] = tuple(capabilities or self.config.get("capabilities", ()))
        self.depends_on: tuple[str, ...] = tuple(depends_on or self.config.get("depends_on", ()))
        self._context: AgentContext | None = None

    @classmethod
    def create(cls, agent_id: str, config: dict[str, Any] | None = None) -> BaseAgent:
        """Build an instance from its id and stored config (used when a dormant agent is activated)."""
        return cls(agent_id, config=config)

    @property
    def id(self) -> AgentId:
        return AgentId(self.agent_type or "base", self.agent_id)

    @property
    def all_capabilities(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.capabilities, *self.instance_capabilities)))

    async def initialize(self) -> None:
        """Prepare the agent before its first event (open clients, load state)."""

    async def process(self, event: Event, ctx: AgentContext, *, durable: bool = True, retries: int = 5
                      ) -> tuple[str, JSON]:
        """Run one event through `handle` with `ctx` bound; perpetual agents add dedupe and commit."""
        self._context = ctx
        try:
            return "completed", await self.handled(event, ctx)
        finally:
            self._context = None

    async def handled(self, event: Event, ctx: AgentContext) -> JSON:
        """`handle`'s result, checked: it is stored with the event, so one that is not JSON fails the handling
        (ValueError, before anything is committed) instead of failing the write of the event's result after."""
        result = await self.handle(event, ctx)
        try:
            _encode(result)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the handler returned a result that is not JSON: {exc}") from None
        return result

    async def handle(self, event: Event, ctx: AgentContext) -> JSON:
        """Handle one event. The default calls `handle_event`; `ctx` is also reachable as `self.ctx`."""
        return await self.handle_event(event)

    async def handle_event(self, event: Event) -> JSON:
        raise NotImplementedError(f"{type(self).__name__} handles no events")

    async def health_check(self) -> bool | str:
        """True when healthy; False or a reason when not (the lifecycle manager then recovers the agent)."""
        return True

    async def sleep(self) -> None:
        """Called before the agent is evicted from memory."""

    async def shutdown(self) -> None:
        """Called when the agent is terminated or the OS shuts down."""

    # --- talking to other agents ---------------------------------------------------------------------

    @property
    def ctx(self) -> AgentContext:
        """The event being handled and the one way to talk to other agents: `self.ctx.send(to, type, data)`,
        `self.ctx.publish(type, data)` and `self.ctx.reply(type, data)` queue messages that go out only after
        the event's state change is committed (never on a failed or retried handling)."""
        if self._context is None:
            raise RuntimeError(f"agent {self.agent_id} is not handling an event")
        return self._context

    def describe(self) -> dict[str, Any]:
        return {"id": self.agent_id, "type": self.agent_type, "capabilities": list(self.all_capabilities),
                "depends_on": list(self.depends_on), "perpetual": self.perpetual}
