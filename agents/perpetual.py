"""PerpetualAgent: an agent whose state outlives every call, kept in its ContextMCPServer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from agents.base import BaseAgent
from aos_core.errors import ConflictError
from aos_core.events import Event
from aos_core.ports import JSON, Clock, StateStore
from services.context import ContextMCPServer

if TYPE_CHECKING:
    from aos_core.agent_context import AgentContext
    from aos_core.kernel import AgentOperatingSystem


class PerpetualAgent(BaseAgent):
    """State is loaded before and committed after each event, with the event id in the same write.

    `self.state` is a JSON object. Inside `handle_event`, `await self.save_state()` asks for the commit the
    kernel makes anyway when the event is done (one write per event); outside an event it writes at once.
    """

    perpetual: ClassVar[bool] = True

    def __init__(
        self,
        agent_id: str,
        *,
        config: dict[str, Any] | None = None,
        capabilities: Iterable[str] | None = None,
        depends_on: Iterable[str] = (),
    ) -> None:
        super().__init__(agent_id, config=config, capabilities=capabilities, depends_on=depends_on)
        self.context: ContextMCPServer | None = None
        self._store: StateStore | None = None
        self._clock: Clock | None = None
        self._dedupe_window = 128
        self._handling = False
        self.host: AgentOperatingSystem | None = None

    def bind(self, store: StateStore, *, clock: Clock | None = None, dedupe_window: int = 128,
             host: AgentOperatingSystem | None = None) -> None:
        """Give the agent the store its context lives in and the kernel that runs it, whose config, reasoner and
        breakers it uses (the kernel does this before `initialize`)."""
        self._store, self._clock, self._dedupe_window, self.host = store, clock, dedupe_window, host

    def require_store(self) -> StateStore:
        """The store the agent is bound to (its context, records it writes, its loops' steps)."""
        if self._store is None:
            raise RuntimeError(f"agent {self.agent_id} is not bound to a store")
        return self._store

    @classmethod
    async def read_context(cls, store: StateStore, agent_id: str) -> dict[str, Any]:
        """The stored context of agent `agent_id` without loading the agent (for readers such as the API)."""
        context = ContextMCPServer(agent_id, store)
        await context.initialize()
        return context.snapshot()

    def initial_state(self) -> dict[str, Any]:
        """The state of an agent that has never saved any."""
        return {}

    async def initialize(self) -> None:
        """Create the agent's ContextMCPServer and load its state."""
        if self.context is None:
            self.context = ContextMCPServer(self.agent_id, self._store, clock=self._clock,
                                            dedupe_window=self._dedupe_window)
            await self.context.initialize()
        else:
            await self.context.reload()
        if self.context.version == 0 and not self.context.state:
            self.context.state = self.initial_state()

    @property
    def state(self) -> dict[str, Any]:
        if self.context is None:
            raise RuntimeError(f"agent {self.agent_id}: call initialize() before using state")
        return self.context.state

    @state.setter
    def state(self, value: dict[str, Any]) -> None:
        if self.context is None:
            raise RuntimeError(f"agent {self.agent_id}: call initialize() before using state")
        self.context.state = value

    async def save_state(self) -> None:
        if self.context is None:
            raise RuntimeError(f"agent {self.agent_id}: call initialize() before save_state()")
        if not self._handling:
            await self.context.save_state()

    async def process(self, event: Event, ctx: AgentContext, *, durable: bool = True, retries: int = 5
                      ) -> tuple[str, JSON]:
        """Apply `event` once: skip a duplicate, handle, commit with the event id; reload and retry a lost race."""
        context = self.context
        if context is None:
            raise RuntimeError(f"agent {self.agent_id} is not initialized")
        for _ in range(retries + 1):
            if context.has_applied(event.id):
                return "duplicate", None
            self._context, self._handling = ctx, True
            try:
                result = await self.handled(event, ctx)
            except BaseException:
                await context.reload()  # drop a half-applied change to state
                raise
            finally:
                self._context, self._handling = None, False
            context.stage_outbox(ctx.outgoing())  # committed with the state: a crash after it loses no message
            if not durable:
                context.mark_applied(event.id)
                return "completed", result
            try:
                await context.save_state(applied_event_id=event.id)
                return "completed", result
            except ConflictError:  # handled again after the reload: what it sends is queued again
                ctx.outbox.clear()
                ctx.workflows.clear()
                await context.reload()
        raise ConflictError(f"context/{self.agent_id}", f"gave up after {retries + 1} lost races")

    async def process_many(self, items: list[tuple[Event, AgentContext]], *, durable: bool = True,
                           around: Callable[[Event, Awaitable[JSON]], Awaitable[JSON]] | None = None
                           ) -> list[tuple[str, JSON]]:
        """Apply several events in order and commit them together: one write with all their ids.

        Each handler runs through `around(event, work)` when given (the kernel's span and timeout). If a handler
        raises or the commit loses a race, nothing is committed: the state is reloaded and the error raised, and
        the caller applies the events one at a time instead. At most `dedupe_window` events per call.
        """
        context = self.context
        if context is None:
            raise RuntimeError(f"agent {self.agent_id} is not initialized")
        outcomes: list[tuple[str, JSON]] = []
        applied: list[str] = []
        try:
            for event, ctx in items:
                if context.has_applied(event.id):
                    outcomes.append(("duplicate", None))
                    continue
                self._context, self._handling = ctx, True
                try:
                    work = self.handled(event, ctx)
                    outcomes.append(("completed", await (around(event, work) if around is not None else work)))
                finally:
                    self._context, self._handling = None, False
                context.stage_outbox(ctx.outgoing())
                applied.append(event.id)
            if durable and applied:
                await context.save_state(applied_event_ids=applied)
            elif not durable:
                for event_id in applied:
                    context.mark_applied(event_id)
        except BaseException:
            await context.reload()  # drop every change the batch made
            raise
        return outcomes

    async def sleep(self) -> None:
        if self.context is not None and self.context.dirty:
            await self.context.save_state()

    async def shutdown(self) -> None:
        await self.sleep()
