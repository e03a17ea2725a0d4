from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aos_core.config import LifecycleSettings
from aos_core.errors import IllegalTransitionError
from aos_core.lifecycle import ALLOWED, AgentState, Lifecycle, LifecycleManager
from aos_core.testing import ManualClock

AT = datetime(2026, 1, 1, tzinfo=UTC)


@given(st.lists(st.sampled_from(list(AgentState)), max_size=40))
def test_random_transitions_stay_in_the_graph_and_illegal_ones_change_nothing(moves: list[AgentState]) -> None:
    lifecycle = Lifecycle()
    for target in moves:
        before = copy.deepcopy(lifecycle)
        if target in ALLOWED[lifecycle.state]:
            lifecycle.transition(target, at=AT)
            assert lifecycle.state == target
        else:
            with pytest.raises(IllegalTransitionError):
                lifecycle.transition(target, at=AT)
            assert lifecycle == before
        assert Lifecycle.from_dict(lifecycle.to_dict()) == lifecycle
        assert len(lifecycle.history) <= 20


def test_the_documented_path() -> None:
    lifecycle = Lifecycle()
    for state in ["initialized", "running", "sleeping", "running", "failed", "recovering", "running", "terminated"]:
        lifecycle.transition(state, at=AT)
    assert ALLOWED[AgentState.TERMINATED] == frozenset()


class Supervisor:
    def __init__(self) -> None:
        self.restarts = 0
        self.fail_restart = False
        self.healthy: bool | str = True

    async def check_health(self, agent_id: str) -> bool | str:
        return self.healthy

    async def restart(self, agent_id: str) -> None:
        self.restarts += 1
        if self.fail_restart:
            raise RuntimeError("still broken")

    async def on_change(self, agent_id: str, lifecycle: Lifecycle) -> None:
        pass


async def test_backoff_grows_and_caps_then_gives_up() -> None:
    settings = LifecycleSettings(backoff_initial=1, backoff_multiplier=2, backoff_max=5, max_restarts=4)
    supervisor = Supervisor()
    manager = LifecycleManager(ManualClock(), settings, supervisor=supervisor)
    assert [manager.backoff(n) for n in range(5)] == [1, 2, 4, 5, 5]
    clock = ManualClock()
    manager = LifecycleManager(clock, settings, supervisor=supervisor)
    manager.track("a", Lifecycle(state=AgentState.RUNNING))
    supervisor.fail_restart = True
    await manager.record_failure("a", "boom")
    for _ in range(20):
        await clock.advance(1)
        await manager.run_recoveries()
    assert supervisor.restarts == 4
    assert manager.get("a") is None  # no longer supervised
    supervisor.fail_restart = False


async def test_unhealthy_agents_are_recovered() -> None:
    clock = ManualClock()
    supervisor = Supervisor()
    manager = LifecycleManager(clock, LifecycleSettings(), supervisor=supervisor)
    lifecycle = Lifecycle(state=AgentState.RUNNING)
    manager.track("a", lifecycle)
    supervisor.healthy = "database unreachable"
    await manager.run_health_checks()
    assert lifecycle.state == AgentState.FAILED and lifecycle.reason == "database unreachable"
    await clock.advance(1)
    await manager.run_recoveries()
    assert lifecycle.state == AgentState.RUNNING and lifecycle.restarts == 1
    await manager.record_success("a")
    assert lifecycle.restarts == 0
