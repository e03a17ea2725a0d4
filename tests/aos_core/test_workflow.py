from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aos_core.errors import RegistrationError
from aos_core.testing import ManualClock, SequentialIds
from aos_core.workflow import WorkflowDefinition, WorkflowEngine, WorkflowStep
from services.storage import SqliteStateStore


class Crash(BaseException):
    """Not an Exception: the engine does not catch it, like a process dying mid-step."""


def definition() -> WorkflowDefinition:
    return WorkflowDefinition(name="launch", steps=[
        WorkflowStep(name="cost", action="ask", input="cfo"),
        WorkflowStep(name="risk", action="ask", input="cto"),
        WorkflowStep(name="decide", action="decide", depends_on=["cost", "risk"]),
    ])


def test_bad_definitions() -> None:
    with pytest.raises(ValueError, match="cycle"):
        WorkflowDefinition(name="x", steps=[WorkflowStep(name="a", action="a", depends_on=["b"]),
                                            WorkflowStep(name="b", action="a", depends_on=["a"])])
    with pytest.raises((ValueError, RegistrationError)):
        WorkflowDefinition(name="x", steps=[WorkflowStep(name="a", action="a", depends_on=["zzz"])])


async def test_a_workflow_resumes_after_a_crash_without_rerunning_done_steps(tmp_path: Path) -> None:
    calls: list[str] = []
    crash = True

    async def ask(value: Any, deps: dict[str, Any]) -> Any:
        calls.append(value)
        return f"{value}-ok"

    async def decide(value: Any, deps: dict[str, Any]) -> Any:
        calls.append("decide")
        if crash:
            raise Crash("process dies mid-step")
        return sorted(deps.values())

    store = SqliteStateStore(tmp_path / "wf.db")
    engine = WorkflowEngine(store, ManualClock(), SequentialIds("wf"))
    engine.register_action("ask", ask)
    engine.register_action("decide", decide)
    workflow_id = await engine.start(definition())
    with pytest.raises(Crash):
        await engine.run(workflow_id)
    await store.close()

    crash = False
    store = SqliteStateStore(tmp_path / "wf.db")
    engine = WorkflowEngine(store, ManualClock(), SequentialIds("wf"))
    engine.register_action("ask", ask)
    engine.register_action("decide", decide)
    await engine.resume_all()
    state = await engine.get(workflow_id)
    assert state["status"] == "completed"
    assert state["steps"]["decide"]["result"] == ["cfo-ok", "cto-ok"]
    assert sorted(calls) == ["cfo", "cto", "decide", "decide"]
    await store.close()


async def test_retries_then_failure(tmp_path: Path) -> None:
    attempts = 0

    async def flaky(value: Any, deps: dict[str, Any]) -> Any:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("down")

    store = SqliteStateStore(tmp_path / "wf.db")
    engine = WorkflowEngine(store, ManualClock(), SequentialIds())
    engine.register_action("flaky", flaky)
    wid = await engine.start(WorkflowDefinition(name="f", steps=[WorkflowStep(name="s", action="flaky", retries=2)]))
    state = await engine.run(wid)
    assert state["status"] == "failed" and attempts == 3
    assert "RuntimeError: down" in state["steps"]["s"]["error"]
    await store.close()
