"""In-process dispatch: one serial mailbox per agent and a bounded cache of live agents.

Events to one agent run one at a time, in arrival order: its mailbox is a FIFO lock that outlives any one
activation, so an event that waits out a failure and recovery keeps its place, and the agent's state never
sees interleaved updates; different agents run concurrently. Live agents are kept in LRU order; when there
are more than `max_live`, or one has been idle for `idle_timeout`, it is saved and evicted (through its
mailbox, so never in the middle of an event), and comes back from storage on its next event. Pinned agents
(registered as objects) stay.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from aos_core.errors import RegistrationError
from aos_core.events import AgentId, Event
from aos_core.ports import Agent, AgentResult, Clock
from aos_core.single_flight import SingleFlight

T = TypeVar("T")


class AgentHost(Protocol):
    """What the dispatcher needs from the kernel: bring an agent to life, run an event, put it to sleep."""

    async def activate(self, agent_id: AgentId) -> Agent: ...

    async def run_in_mailbox(self, agent_id: AgentId, event: Event, *, fresh: bool = False) -> AgentResult: ...

    async def run_many_in_mailbox(self, agent_id: AgentId, events: list[Event]) -> list[AgentResult]: ...

    async def deactivate(self, agent: Agent) -> None: ...

    def pinned(self, agent_id: str) -> bool: ...


class _Mailbox:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()  # FIFO for waiters: events are applied in arrival order
        self.users = 0  # deliveries holding or waiting for it; the mailbox is forgotten at zero


class _Live:
    __slots__ = ("agent", "last_used")

    def __init__(self, agent: Agent, now: float) -> None:
        self.agent = agent
        self.last_used = now


class LocalDispatcher:
    def __init__(self, host: AgentHost, clock: Clock, *, max_live: int = 10_000, idle_timeout: float = 300.0) -> None:
        self._host = host
        self._clock = clock
        self.max_live = max_live
        self.idle_timeout = idle_timeout
        self._live: OrderedDict[str, _Live] = OrderedDict()
        self._mailboxes: dict[str, _Mailbox] = {}
        self._activating: SingleFlight[str, _Live] = SingleFlight()
        self._deactivating: dict[str, asyncio.Event] = {}
        self._shrinking = False
        self._shrink_again = False
        self.activations = 0
        self.evictions = 0

    @property
    def live_count(self) -> int:
        return len(self._live)

    def is_live(self, agent_id: str) -> bool:
        return agent_id in self._live

    def live_agent(self, agent_id: str) -> Agent | None:
        live = self._live.get(agent_id)
        return live.agent if live else None

    def live_ids(self) -> list[str]:
        return list(self._live)

    def busy(self, agent_id: str) -> bool:
        """True while an event for this agent is being handled or waits in its mailbox."""
        return agent_id in self._mailboxes

    async def ensure_live(self, agent_id: AgentId) -> Agent:
        """The live agent, activated from storage if needed (the caller holds its mailbox or only reads)."""
        live = self._live.get(agent_id.key) or await self._activate(agent_id)
        if live.agent.agent_type != agent_id.type:
            raise RegistrationError(f"agent {agent_id.key!r} is of type {live.agent.agent_type!r}, "
                                    f"not {agent_id.type!r}")
        live.last_used = self._clock.monotonic()
        self._live.move_to_end(agent_id.key)
        return live.agent

    async def deliver(self, agent_id: AgentId, event: Event, *, fresh: bool = False) -> AgentResult:
        """Run `event` through the agent's mailbox: the host activates, applies and retries in there.

        `fresh`: the event was accepted by this very call, so no one can have applied it yet."""
        return await self._holding(agent_id.key, lambda: self._host.run_in_mailbox(agent_id, event, fresh=fresh))

    async def deliver_many(self, agent_id: AgentId, events: list[Event]) -> list[AgentResult]:
        """Run `events` through the agent's mailbox in order, in one hold (the host may commit them together)."""
        return await self._holding(agent_id.key, lambda: self._host.run_many_in_mailbox(agent_id, events))

    async def _holding(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._in_mailbox(key, work)
        finally:
            if len(self._live) > self.max_live:  # agents busy when the cache overflowed can go now
                await self._shrink()

    async def _in_mailbox(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run `work` holding the agent's mailbox. Not an async context manager: this is on every delivery's path,
        and the generator behind one costs more than the lock itself."""
        mailbox = self._mailboxes.get(key)
        if mailbox is None:
            mailbox = self._mailboxes[key] = _Mailbox()
        mailbox.users += 1
        try:
            async with mailbox.lock:
                return await work()
        finally:
            mailbox.users -= 1
            if mailbox.users == 0 and self._mailboxes.get(key) is mailbox:
                del self._mailboxes[key]

    async def _activate(self, agent_id: AgentId) -> _Live:
        live = await self._activating.run(agent_id.key, lambda: self._load(agent_id))  # one load, shared
        await self._shrink()
        return live

    async def _load(self, agent_id: AgentId) -> _Live:
        key = agent_id.key
        saving = self._deactivating.get(key)
        if saving is not None:  # let the previous incarnation finish saving before we load
            await saving.wait()
        agent = await self._host.activate(agent_id)
        live = self._live[key] = _Live(agent, self._clock.monotonic())
        self.activations += 1
        return live

    async def _shrink(self) -> None:
        # One pass at a time; a request that comes during it makes it look again, so agents that were busy
        # when the cache overflowed are evicted once they are done.
        if self._shrinking:
            self._shrink_again = True
            return
        self._shrinking = True
        try:
            while True:
                self._shrink_again = False
                for key in list(self._live):
                    if len(self._live) <= self.max_live:
                        break
                    await self._evict_if_idle(key)
                if not self._shrink_again:
                    return
        finally:
            self._shrinking = False

    async def _evict_if_idle(self, key: str) -> bool:
        if key not in self._live or key in self._mailboxes or self._host.pinned(key):
            return False
        await self.drop(key)
        return True

    async def drop(self, key: str, *, save: bool = True) -> None:
        """Take an agent out of memory (saving it first unless `save` is False, as after a failure).

        Saving goes through the agent's mailbox, after the events queued before it, so it never runs beside
        an event; `save=False` is what the holder of the mailbox itself calls.
        """
        if not save:
            if self._live.pop(key, None) is not None:
                self.evictions += 1
            return
        await self._in_mailbox(key, lambda: self._deactivate(key))

    async def _deactivate(self, key: str) -> None:
        live = self._live.pop(key, None)
        if live is None:
            return
        self.evictions += 1
        done = self._deactivating[key] = asyncio.Event()
        try:
            await self._host.deactivate(live.agent)
        finally:
            done.set()
            if self._deactivating.get(key) is done:
                del self._deactivating[key]

    async def evict_idle(self) -> int:
        """Evict every unpinned agent idle for longer than `idle_timeout`; return how many."""
        cutoff = self._clock.monotonic() - self.idle_timeout
        idle = [k for k, live in self._live.items() if live.last_used <= cutoff]
        count = 0
        for key in idle:
            count += await self._evict_if_idle(key)
        return count

    async def run(self, stop: asyncio.Event) -> None:
        """Background sweep: evict idle agents every half idle timeout."""
        while not stop.is_set():
            await self._clock.sleep(self.idle_timeout / 2)
            await self.evict_idle()

    async def close(self) -> None:
        """Save and release every live agent."""
        for key in list(self._live):
            await self.drop(key)
