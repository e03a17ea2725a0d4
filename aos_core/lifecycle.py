"""The agent lifecycle: a state machine, health checks, and auto-recovery with exponential backoff."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from aos_core.clock import sleep_or_wake
from aos_core.errors import IllegalTransitionError
from aos_core.ports import Clock


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
    S.FAILED: frozenset({S.RECOVERING, S.TERMINATED}),
    S.RECOVERING: frozenset({S.RUNNING, S.FAILED, S.TERMINATED}),
    S.TERMINATED: frozenset(),
}
_HISTORY = 20


@dataclass
class Lifecycle:
    state: AgentState = AgentState.CREATED
    reason: str | None = None
    restarts: int = 0
    last_change: str | None = None
    next_attempt_at: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def transition(self, to: AgentState | str, *, at: datetime, reason: str | None = None) -> None:
        """Move to `to`; IllegalTransitionError (and no change at all) if the machine does not allow it."""
        target = AgentState(to)
        if target not in ALLOWED[self.state]:
            raise IllegalTransitionError(self.state, target)
        self.history = [*self.history, {"at": at.isoformat(), "from": self.state.value, "to": target.value,
                                        "reason": reason}][-_HISTORY:]
        self.state, self.reason, self.last_change = target, reason, at.isoformat()

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state.value, "reason": self.reason, "restarts": self.restarts,
                "last_change": self.last_change, "next_attempt_at": self.next_attempt_at,
                "history": list(self.history)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Lifecycle:
        return cls(state=AgentState(value.get("state", "created")), reason=value.get("reason"),
                   restarts=int(value.get("restarts", 0)), last_change=value.get("last_change"),
                   next_attempt_at=value.get("next_attempt_at"), history=list(value.get("history", [])))


class Supervisor(Protocol):
    """What the manager needs from the kernel."""

    async def check_health(self, agent_id: str) -> bool | str: ...

    async def restart(self, agent_id: str) -> None: ...

    async def on_change(self, agent_id: str, lifecycle: Lifecycle) -> None: ...


class LifecycleManager:
    """Tracks live and failed agents; recovers failed ones with backoff, up to `max_restarts`."""

    def __init__(self, clock: Clock, settings: Any, *, supervisor: Supervisor) -> None:
        self._clock = clock
        self._settings = settings
        self._supervisor = supervisor
        self._tracked: dict[str, Lifecycle] = {}
        self._wake = asyncio.Event()

    def track(self, agent_id: str, lifecycle: Lifecycle) -> None:
        self._tracked[agent_id] = lifecycle

    def forget(self, agent_id: str) -> None:
        self._tracked.pop(agent_id, None)

    def get(self, agent_id: str) -> Lifecycle | None:
        return self._tracked.get(agent_id)

    def backoff(self, restarts: int) -> float:
        s = self._settings
        return float(min(s.backoff_max, s.backoff_initial * s.backoff_multiplier ** restarts))

    async def transition(self, agent_id: str, to: AgentState, reason: str | None = None) -> None:
        lifecycle = self._tracked[agent_id]
        lifecycle.transition(to, at=self._clock.now(), reason=reason)
        await self._supervisor.on_change(agent_id, lifecycle)

    async def record_failure(self, agent_id: str, reason: str) -> None:
        lifecycle = self._tracked.setdefault(agent_id, Lifecycle(state=AgentState.RUNNING))
        now = self._clock.now()
        if lifecycle.state != AgentState.FAILED:
            lifecycle.transition(AgentState.FAILED, at=now, reason=reason)
        if lifecycle.restarts >= self._settings.max_restarts:
            lifecycle.reason = f"gave up after {lifecycle.restarts} restarts: {reason}"
            lifecycle.next_attempt_at = None
            self._tracked.pop(agent_id, None)
        else:
            lifecycle.reason = reason
            delay = self.backoff(lifecycle.restarts)
            lifecycle.next_attempt_at = (now + timedelta(seconds=delay)).isoformat()
            self._wake.set()
        await self._supervisor.on_change(agent_id, lifecycle)

    async def record_success(self, agent_id: str) -> None:
        lifecycle = self._tracked.get(agent_id)
        if lifecycle is not None and lifecycle.state == AgentState.RUNNING and lifecycle.restarts:
            lifecycle.restarts = 0
            await self._supervisor.on_change(agent_id, lifecycle)

    async def run_health_checks(self) -> None:
        for agent_id, lifecycle in list(self._tracked.items()):
            if lifecycle.state != AgentState.RUNNING:
                continue
            try:
                health = await self._supervisor.check_health(agent_id)
            except Exception as exc:
                health = f"health check raised {type(exc).__name__}: {exc}"
            if health is not True:
                await self.record_failure(agent_id, health or "unhealthy")

    async def run_recoveries(self) -> None:
        now = self._clock.now()
        for agent_id, lifecycle in list(self._tracked.items()):
            if lifecycle.state != AgentState.FAILED or lifecycle.next_attempt_at is None:
                continue
            if datetime.fromisoformat(lifecycle.next_attempt_at) > now:
                continue
            lifecycle.restarts += 1
            lifecycle.next_attempt_at = None
            lifecycle.transition(AgentState.RECOVERING, at=now, reason=f"restart {lifecycle.restarts}")
            await self._supervisor.on_change(agent_id, lifecycle)
            try:
                await self._supervisor.restart(agent_id)
            except Exception as exc:
                lifecycle.transition(AgentState.FAILED, at=self._clock.now(), reason=str(exc))
                await self.record_failure(agent_id, f"{type(exc).__name__}: {exc}")
                continue
            lifecycle.transition(AgentState.RUNNING, at=self._clock.now(), reason="recovered")
            await self._supervisor.on_change(agent_id, lifecycle)

    def _next_deadline(self) -> float:
        wait = float(self._settings.health_interval)
        now = self._clock.now()
        for lifecycle in self._tracked.values():
            if lifecycle.state == AgentState.FAILED and lifecycle.next_attempt_at:
                due = (datetime.fromisoformat(lifecycle.next_attempt_at) - now).total_seconds()
                wait = min(wait, max(0.0, due))
        return wait

    async def run(self, stop: asyncio.Event) -> None:
        """Loop: recover due agents, check health every `health_interval`, on the given clock."""
        health_due = self._settings.health_interval
        while not stop.is_set():
            self._wake.clear()
            wait = min(self._next_deadline(), health_due)
            started = self._clock.monotonic()
            await sleep_or_wake(self._clock, wait, self._wake)
            health_due -= self._clock.monotonic() - started
            await self.run_recoveries()
            if health_due <= 0:
                health_due = self._settings.health_interval
                await self.run_health_checks()
