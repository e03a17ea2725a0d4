"""The agent lifecycle: a state machine, health checks, and auto-recovery with exponential backoff.

    created -> initialized -> running <-> sleeping
    any state but terminated -> failed -> recovering -> running (or back to failed)
    any state but terminated -> terminated (final)

`Lifecycle` is the per-agent record (the kernel persists `to_dict()` in the registry); `LifecycleManager`
supervises the live ones through a `Supervisor` the kernel implements, on the kernel's `Clock`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple, Protocol

from aos_core.clock import sleep_or_wake
from aos_core.config import LifecycleSettings
from aos_core.errors import AgentUnavailableError, IllegalTransitionError, NotFoundError
from aos_core.ports import Clock

log = logging.getLogger(__name__)


class AgentState(StrEnum):
    CREATED = "created"
    INITIALIZED = "initialized"
    RUNNING = "running"
    SLEEPING = "sleeping"
    TERMINATED = "terminated"
    FAILED = "failed"
    RECOVERING = "recovering"


S = AgentState
ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    S.CREATED: frozenset({S.INITIALIZED, S.TERMINATED, S.FAILED}),
    S.INITIALIZED: frozenset({S.RUNNING, S.TERMINATED, S.FAILED}),
    S.RUNNING: frozenset({S.SLEEPING, S.TERMINATED, S.FAILED}),
    S.SLEEPING: frozenset({S.RUNNING, S.TERMINATED, S.FAILED}),
    S.FAILED: frozenset({S.RECOVERING, S.TERMINATED}),  # failed -> failed is not a move: update the reason
    S.RECOVERING: frozenset({S.RUNNING, S.FAILED, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}
HISTORY_LIMIT = 20


class Change(NamedTuple):
    """One transition in a lifecycle's history."""

    at: datetime
    from_state: AgentState
    to_state: AgentState
    reason: str | None


@dataclass
class Lifecycle:
    """One agent's lifecycle state. `restarts` counts consecutive recovery attempts (reset by a success)."""

    state: AgentState = AgentState.CREATED
    reason: str | None = None
    restarts: int = 0
    last_change: datetime | None = None
    next_attempt_at: datetime | None = None  # when a failed agent is due for its next restart
    history: list[Change] = field(default_factory=list)  # the last HISTORY_LIMIT changes, oldest first

    def can(self, to: AgentState | str) -> bool:
        return AgentState(to) in ALLOWED[self.state]

    def transition(self, to: AgentState | str, *, at: datetime, reason: str | None = None) -> None:
        """Move to `to`; IllegalTransitionError (and no change at all) if the machine does not allow it."""
        target = AgentState(to)
        if target not in ALLOWED[self.state]:
            raise IllegalTransitionError(self.state.value, target.value)
        self.history = [*self.history, Change(at, self.state, target, reason)][-HISTORY_LIMIT:]
        self.state, self.reason, self.last_change = target, reason, at
        if target != AgentState.FAILED:
            self.next_attempt_at = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "restarts": self.restarts,
                "last_change": _iso(self.last_change), "next_attempt_at": _iso(self.next_attempt_at),
                "history": [{"at": c.at.isoformat(), "from": c.from_state.value, "to": c.to_state.value,
                             "reason": c.reason} for c in self.history]}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Lifecycle:
        history = [Change(datetime.fromisoformat(c["at"]), AgentState(c["from"]), AgentState(c["to"]),
                          c.get("reason")) for c in value.get("history") or ()]
        return cls(state=AgentState(value.get("state") or AgentState.CREATED), reason=value.get("reason"),
                   restarts=int(value.get("restarts") or 0), last_change=_parse(value.get("last_change")),
                   next_attempt_at=_parse(value.get("next_attempt_at")), history=history[-HISTORY_LIMIT:])


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if not value else datetime.fromisoformat(value)


class Supervisor(Protocol):
    """What the manager needs from the kernel."""

    async def check_health(self, agent_id: str) -> bool | str:
        """True when healthy; False or a reason when not."""
        ...

    async def restart(self, agent_id: str) -> None:
        """Bring the agent back; raise if it cannot be."""
        ...

    async def on_change(self, agent_id: str, lifecycle: Lifecycle) -> None:
        """Persist the lifecycle after the manager changed it."""
        ...


class LifecycleManager:
    """Supervises tracked agents: health checks every `health_interval`, restarts with capped exponential
    backoff up to `max_restarts` consecutive attempts, then leaves the agent failed saying why.

    `settings` is the config's LifecycleSettings (or a mapping); keyword arguments override single values.
    `jitter`, a seeded `random.Random`, turns on full jitter (delay uniform in [0, backoff]); off by default
    so schedules are deterministic.
    """

    def __init__(self, clock: Clock, settings: LifecycleSettings | Mapping[str, Any] | None = None, *,
                 supervisor: Supervisor, jitter: random.Random | None = None, **overrides: Any) -> None:
        base = settings.model_dump() if isinstance(settings, LifecycleSettings) else dict(settings or {})
        self.settings = LifecycleSettings.model_validate({**base, **overrides})
        self._clock = clock
        self._supervisor = supervisor
        self._jitter = jitter
        self._tracked: dict[str, Lifecycle] = {}
        self._wake = asyncio.Event()  # a new recovery deadline: the run loop recomputes its sleep
        self._changed = asyncio.Event()  # set (and replaced) on every change, for `wait_available`

    def track(self, agent_id: str, lifecycle: Lifecycle) -> None:
        self._tracked[agent_id] = lifecycle
        if lifecycle.next_attempt_at is not None:
            self._wake.set()

    def forget(self, agent_id: str) -> None:
        self._tracked.pop(agent_id, None)
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_available(self, agent_id: str) -> None:
        """Return once the agent may take events: at once unless it is failed or recovering, else after its
        recovery. AgentUnavailableError when it is terminated or recovery gave up."""
        while True:
            lifecycle = self._tracked.get(agent_id)
            if lifecycle is None or lifecycle.state not in (AgentState.FAILED, AgentState.RECOVERING,
                                                            AgentState.TERMINATED):
                return
            if lifecycle.state == AgentState.TERMINATED or (
                    lifecycle.state == AgentState.FAILED and lifecycle.next_attempt_at is None):
                raise AgentUnavailableError(f"agent {agent_id!r} is {lifecycle.state}: "
                                            f"{lifecycle.reason or 'no reason'}")
            await self._changed.wait()

    def get(self, agent_id: str) -> Lifecycle | None:
        return self._tracked.get(agent_id)

    def tracked(self) -> list[str]:
        return sorted(self._tracked)

    def backoff(self, restarts: int) -> float:
        """Seconds to wait before restart number `restarts + 1`."""
        s = self.settings
        delay = float(min(s.backoff_max, s.backoff_initial * s.backoff_multiplier ** restarts))
        return self._jitter.uniform(0.0, delay) if self._jitter is not None else delay

    async def transition(self, agent_id: str, to: AgentState | str, reason: str | None = None) -> Lifecycle:
        """Move a tracked agent (NotFoundError if untracked, IllegalTransitionError if not allowed) and persist."""
        lifecycle = self._require(agent_id)
        lifecycle.transition(to, at=self._clock.now(), reason=reason)
        await self._supervisor.on_change(agent_id, lifecycle)
        self._notify()
        return lifecycle

    async def record_failure(self, agent_id: str, reason: str) -> Lifecycle:
        """Mark the agent failed and schedule its next restart, or give up after `max_restarts` attempts.

        An untracked agent is tracked from here on (the kernel reports failures of agents it just ran);
        a terminated one stays terminated.
        """
        lifecycle = self._tracked.setdefault(agent_id, Lifecycle(state=AgentState.RUNNING))
        if lifecycle.state == AgentState.TERMINATED:
            return lifecycle
        now = self._clock.now()
        if lifecycle.state != AgentState.FAILED:
            lifecycle.transition(AgentState.FAILED, at=now, reason=reason)
        if lifecycle.restarts >= self.settings.max_restarts:
            lifecycle.reason = f"gave up after {lifecycle.restarts} restarts: {reason}"
            lifecycle.next_attempt_at = None
        else:
            lifecycle.reason = reason
            lifecycle.next_attempt_at = now + timedelta(seconds=self.backoff(lifecycle.restarts))
            self._wake.set()
        await self._supervisor.on_change(agent_id, lifecycle)
        self._notify()
        return lifecycle

    async def record_success(self, agent_id: str) -> None:
        """The agent did its work: its next failure starts the backoff from the beginning again."""
        lifecycle = self._tracked.get(agent_id)
        if lifecycle is not None and lifecycle.state == AgentState.RUNNING and lifecycle.restarts:
            lifecycle.restarts = 0
            await self._supervisor.on_change(agent_id, lifecycle)
        self._notify()

    async def run_health_checks(self) -> list[str]:
        """Check every running agent; record a failure for each unhealthy one and return their ids."""
        running = [(k, lc) for k, lc in self._tracked.items() if lc.state == AgentState.RUNNING]
        verdicts = await asyncio.gather(*(self._check(agent_id) for agent_id, _ in running))
        unhealthy = []
        for (agent_id, lifecycle), verdict in zip(running, verdicts, strict=True):
            # The check awaited: the agent may have slept, been terminated or replaced meanwhile.
            if verdict is True or self._tracked.get(agent_id) is not lifecycle:
                continue
            if lifecycle.state == AgentState.RUNNING:
                unhealthy.append(agent_id)
                await self.record_failure(agent_id, verdict or "unhealthy")
        return unhealthy

    async def _check(self, agent_id: str) -> bool | str:
        timeout = self.settings.health_interval
        check = asyncio.ensure_future(self._supervisor.check_health(agent_id))
        timer = asyncio.ensure_future(self._clock.sleep(timeout))
        try:
            await asyncio.wait({check, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not check.done():
            check.cancel()
            return f"health check did not answer within {timeout:g}s"
        if check.cancelled():
            return "health check was cancelled"
        if (exc := check.exception()) is not None:
            return f"health check raised {type(exc).__name__}: {exc}"
        return check.result()

    def next_recovery(self) -> datetime | None:
        """The earliest time a failed agent is due for a restart."""
        due = [lc.next_attempt_at for lc in self._tracked.values()
               if lc.state == AgentState.FAILED and lc.next_attempt_at is not None]
        return min(due) if due else None

    async def run_recoveries(self) -> list[str]:
        """Restart every failed agent whose backoff has passed; return the ids that are running again."""
        now = self._clock.now()
        due = [(k, lc) for k, lc in self._tracked.items() if lc.state == AgentState.FAILED
               and lc.next_attempt_at is not None and lc.next_attempt_at <= now]
        for _, lifecycle in due:
            # Claimed before the first await, so a concurrent call cannot restart the same agent twice.
            lifecycle.restarts += 1
            lifecycle.transition(AgentState.RECOVERING, at=now, reason=f"restart {lifecycle.restarts}")
        outcomes = await asyncio.gather(*(self._recover(agent_id, lifecycle) for agent_id, lifecycle in due))
        return [agent_id for (agent_id, _), ok in zip(due, outcomes, strict=True) if ok]

    async def _recover(self, agent_id: str, lifecycle: Lifecycle) -> bool:
        try:
            await self._supervisor.on_change(agent_id, lifecycle)
            await self._supervisor.restart(agent_id)
        except Exception as exc:
            if self._tracked.get(agent_id) is lifecycle and lifecycle.state == AgentState.RECOVERING:
                await self.record_failure(agent_id, f"{type(exc).__name__}: {exc}")
            return False
        if self._tracked.get(agent_id) is not lifecycle or lifecycle.state != AgentState.RECOVERING:
            return False  # terminated or forgotten while restarting
        lifecycle.transition(AgentState.RUNNING, at=self._clock.now(), reason=f"recovered by restart "
                             f"{lifecycle.restarts}")
        await self._supervisor.on_change(agent_id, lifecycle)
        self._notify()
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: sleep on the clock until the next recovery deadline or health check, whichever
        is first, and do what is due. Errors are logged; they never end the loop."""
        interval = self.settings.health_interval
        next_health = self._clock.monotonic() + interval
        relay = asyncio.ensure_future(_set_when(stop, self._wake))  # stopping wakes the sleep below
        try:
            while not stop.is_set():
                self._wake.clear()
                wait = next_health - self._clock.monotonic()
                if (due := self.next_recovery()) is not None:
                    wait = min(wait, (due - self._clock.now()).total_seconds())
                if wait > 0:
                    await sleep_or_wake(self._clock, wait, self._wake)
                if stop.is_set():
                    return
                try:
                    await self.run_recoveries()
                    if self._clock.monotonic() >= next_health:
                        next_health = self._clock.monotonic() + interval
                        await self.run_health_checks()
                except Exception:
                    log.exception("lifecycle supervision round failed")
                    await self._clock.sleep(min(interval, 1.0))  # a failing store must not become a busy loop
        finally:
            relay.cancel()

    def _require(self, agent_id: str) -> Lifecycle:
        lifecycle = self._tracked.get(agent_id)
        if lifecycle is None:
            raise NotFoundError(f"agent {agent_id!r} is not supervised")
        return lifecycle



async def _set_when(trigger: asyncio.Event, target: asyncio.Event) -> None:
    await trigger.wait()
    target.set()
