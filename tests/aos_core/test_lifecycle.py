from __future__ import annotations

import asyncio
import copy
import itertools
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aos_core.config import LifecycleSettings
from aos_core.errors import IllegalTransitionError, NotFoundError
from aos_core.lifecycle import ALLOWED, AgentState, Lifecycle, LifecycleManager
from aos_core.testing import ManualClock

AT = datetime(2026, 1, 1, tzinfo=UTC)
S = AgentState


def test_the_allowed_moves_are_exactly_the_documented_ones() -> None:
    documented = {(S.CREATED, S.INITIALIZED), (S.INITIALIZED, S.RUNNING), (S.RUNNING, S.SLEEPING),
                  (S.SLEEPING, S.RUNNING), (S.FAILED, S.RECOVERING), (S.RECOVERING, S.RUNNING),
                  (S.RECOVERING, S.FAILED)}
    documented |= {(s, S.TERMINATED) for s in S if s != S.TERMINATED}
    documented |= {(s, S.FAILED) for s in S if s not in (S.TERMINATED, S.FAILED)}
    assert {(a, b) for a, targets in ALLOWED.items() for b in targets} == documented


moves = st.lists(st.tuples(st.sampled_from(list(AgentState)), st.none() | st.text(max_size=5),
                           st.integers(0, 10**6)), max_size=40)


@given(moves)
def test_random_transitions_stay_in_the_graph_and_illegal_ones_change_nothing(
        steps: list[tuple[AgentState, str | None, int]]) -> None:
    lifecycle = Lifecycle()
    for target, reason, seconds in steps:
        at = AT + timedelta(seconds=seconds)
        before = copy.deepcopy(lifecycle)
        if lifecycle.can(target):
            lifecycle.transition(target, at=at, reason=reason)
            assert (lifecycle.state, lifecycle.reason, lifecycle.last_change) == (target, reason, at)
            assert lifecycle.history[-1] == (at, before.state, target, reason)
        else:
            with pytest.raises(IllegalTransitionError, match=f"{before.state} -> {target}"):
                lifecycle.transition(target.value, at=at, reason=reason)
            assert lifecycle == before
        # The history is bounded, chained, and never leaves the graph.
        assert len(lifecycle.history) <= 20
        assert all(c.to_state in ALLOWED[c.from_state] for c in lifecycle.history)
        assert all(a.to_state == b.from_state for a, b in itertools.pairwise(lifecycle.history))
        assert Lifecycle.from_dict(json.loads(json.dumps(lifecycle.to_dict()))) == lifecycle


def test_the_documented_path_and_terminated_is_final() -> None:
    lifecycle = Lifecycle()
    for state in ["initialized", "running", "sleeping", "running", "failed", "recovering", "running", "terminated"]:
        lifecycle.transition(state, at=AT)
    for state in AgentState:
        with pytest.raises(IllegalTransitionError):
            lifecycle.transition(state, at=AT)
    assert lifecycle.to_dict()["history"][0] == {"at": AT.isoformat(), "from": "created", "to": "initialized",
                                                 "reason": None}


class Supervisor:
    def __init__(self) -> None:
        self.restarts: list[datetime] = []
        self.fail_restart = False
        self.healthy: bool | str = True
        self.changes: list[tuple[str, str]] = []
        self.clock: ManualClock | None = None

    async def check_health(self, agent_id: str) -> bool | str:
        if self.healthy == "raise":
            raise ConnectionError("no route")
        if self.healthy == "hang":
            await asyncio.Event().wait()
        return self.healthy

    async def restart(self, agent_id: str) -> None:
        assert self.clock is not None
        self.restarts.append(self.clock.now())
        if self.fail_restart:
            raise RuntimeError("still broken")

    async def on_change(self, agent_id: str, lifecycle: Lifecycle) -> None:
        self.changes.append((agent_id, lifecycle.state.value))


def manager(settings: LifecycleSettings | None = None, **overrides: object) -> tuple[
        LifecycleManager, Supervisor, ManualClock]:
    clock, supervisor = ManualClock(), Supervisor()
    supervisor.clock = clock
    return LifecycleManager(clock, settings, supervisor=supervisor, **overrides), supervisor, clock


def test_settings_come_from_config_or_plain_arguments() -> None:
    assert manager()[0].settings == LifecycleSettings()
    custom = manager(LifecycleSettings(max_restarts=2), backoff_initial=0.5)[0].settings
    assert (custom.max_restarts, custom.backoff_initial, custom.backoff_max) == (2, 0.5, 300.0)


def test_backoff_grows_exponentially_and_caps() -> None:
    lm = manager(backoff_initial=1, backoff_multiplier=2, backoff_max=5)[0]
    assert [lm.backoff(n) for n in range(6)] == [1, 2, 4, 5, 5, 5]
    default = manager()[0]
    assert [default.backoff(n) for n in (0, 1, 8, 9, 50)] == [1, 2, 256, 300, 300]


def test_full_jitter_is_seeded_and_bounded() -> None:
    first = manager(jitter=random.Random(7))[0]
    second = manager(jitter=random.Random(7))[0]
    delays = [first.backoff(n) for n in range(10)]
    assert delays == [second.backoff(n) for n in range(10)]
    assert all(0 <= d <= min(300, 2**n) for n, d in enumerate(delays))


async def test_failed_restarts_back_off_then_the_manager_gives_up_and_says_why() -> None:
    lm, supervisor, clock = manager(backoff_initial=1, backoff_multiplier=2, backoff_max=5, max_restarts=4)
    lm.track("a", Lifecycle(state=AgentState.RUNNING))
    supervisor.fail_restart = True
    lifecycle = await lm.record_failure("a", "boom")
    assert lifecycle.next_attempt_at == clock.now() + timedelta(seconds=1)
    for _ in range(60):
        await clock.advance(1)
        await lm.run_recoveries()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert [(t - start).total_seconds() for t in supervisor.restarts] == [1, 3, 7, 12]  # +1, +2, +4, +5 (cap)
    assert lifecycle.state == AgentState.FAILED and lifecycle.restarts == 4 and lifecycle.next_attempt_at is None
    assert lifecycle.reason == "gave up after 4 restarts: RuntimeError: still broken"
    assert lm.get("a") is lifecycle and lm.next_recovery() is None
    assert supervisor.changes[-1] == ("a", "failed")


async def test_unhealthy_agents_are_recovered_and_success_resets_the_count() -> None:
    lm, supervisor, clock = manager()
    lifecycle = Lifecycle(state=AgentState.RUNNING)
    lm.track("a", lifecycle)
    lm.track("asleep", Lifecycle(state=AgentState.SLEEPING))
    assert await lm.run_health_checks() == []
    supervisor.healthy = "database unreachable"
    assert await lm.run_health_checks() == ["a"]  # sleeping agents are not checked
    assert lifecycle.state == AgentState.FAILED and lifecycle.reason == "database unreachable"
    assert await lm.run_recoveries() == []  # not due yet
    await clock.advance(1)
    assert await lm.run_recoveries() == ["a"]
    assert lifecycle.state == AgentState.RUNNING and lifecycle.restarts == 1
    assert [s for _, s in supervisor.changes] == ["failed", "recovering", "running"]
    await lm.record_success("a")
    assert lifecycle.restarts == 0


@pytest.mark.parametrize(("verdict", "reason"), [
    (False, "unhealthy"), ("raise", "health check raised ConnectionError: no route"),
    ("hang", "health check did not answer within 30s")])
async def test_every_kind_of_bad_health_is_a_failure(verdict: bool | str, reason: str) -> None:
    lm, supervisor, clock = manager()
    lm.track("a", Lifecycle(state=AgentState.RUNNING))
    supervisor.healthy = verdict
    checking = asyncio.ensure_future(lm.run_health_checks())
    await clock.advance(30)
    assert await checking == ["a"]
    assert lm.get("a").reason == reason  # type: ignore[union-attr]


async def test_terminated_agents_stay_terminated_and_unknown_ones_are_reported() -> None:
    lm, supervisor, _ = manager()
    lifecycle = Lifecycle(state=AgentState.RUNNING)
    lm.track("a", lifecycle)
    await lm.transition("a", AgentState.TERMINATED, reason="retired")
    await lm.record_failure("a", "late error")
    assert lifecycle.state == AgentState.TERMINATED and lifecycle.reason == "retired"
    with pytest.raises(IllegalTransitionError):
        await lm.transition("a", AgentState.RUNNING)
    assert supervisor.changes == [("a", "terminated")]  # the illegal move persisted nothing
    with pytest.raises(NotFoundError):
        await lm.transition("nobody", AgentState.RUNNING)


async def test_an_agent_terminated_while_restarting_is_left_alone() -> None:
    lm, supervisor, clock = manager()
    lifecycle = Lifecycle(state=AgentState.RUNNING)
    lm.track("a", lifecycle)
    await lm.record_failure("a", "boom")
    await clock.advance(1)
    original = supervisor.restart

    async def restart_then_terminated(agent_id: str) -> None:
        await original(agent_id)
        lifecycle.transition(AgentState.TERMINATED, at=clock.now(), reason="retired")
        lm.forget(agent_id)

    supervisor.restart = restart_then_terminated  # type: ignore[method-assign]
    assert await lm.run_recoveries() == []
    assert lifecycle.state == AgentState.TERMINATED


async def test_the_loop_recovers_on_the_backoff_deadline_and_checks_health_on_the_interval() -> None:
    lm, supervisor, clock = manager(health_interval=10, backoff_initial=3)
    lifecycle = Lifecycle(state=AgentState.RUNNING)
    lm.track("a", lifecycle)
    stop = asyncio.Event()
    loop = asyncio.ensure_future(lm.run(stop))
    await clock.advance(5)
    await lm.record_failure("a", "boom")  # at t=5: restart due at t=8, before the health check at t=10
    await clock.advance(2.9)
    assert supervisor.restarts == []
    await clock.advance(0.1)
    assert len(supervisor.restarts) == 1 and lifecycle.state == AgentState.RUNNING
    supervisor.healthy = "sick"
    await clock.advance(2)  # t=10: the health check finds it sick; restart due at t=10 + 3 * 2
    assert lifecycle.state == AgentState.FAILED and lifecycle.reason == "sick"
    supervisor.healthy = True
    await clock.advance(6)
    assert len(supervisor.restarts) == 2 and lifecycle.state == AgentState.RUNNING
    stop.set()
    await asyncio.wait_for(loop, 1)  # stopping wakes the loop without advancing the clock
    assert clock.sleepers == 0
