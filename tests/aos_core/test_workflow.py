from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aos_core.errors import ConflictError, NotFoundError, RegistrationError
from aos_core.testing import ManualClock, SequentialIds
from aos_core.workflow import WorkflowDefinition, WorkflowEngine, WorkflowStep
from services.storage import InMemoryStateStore, SqliteStateStore


class Crash(BaseException):
    """Not an Exception: the engine does not catch it, like a process dying mid-step."""


def launch() -> WorkflowDefinition:
    return WorkflowDefinition(name="launch", steps=[
        WorkflowStep(name="decide", action="decide", depends_on=["cost", "risk"]),
        WorkflowStep(name="cost", action="ask", input="cfo"),
        WorkflowStep(name="risk", action="ask", input="cto"),
    ])


def engine(store: Any = None, clock: ManualClock | None = None) -> WorkflowEngine:
    return WorkflowEngine(store or InMemoryStateStore(), clock or ManualClock(), SequentialIds("wf"))


async def resume_after_the_lease(wf: WorkflowEngine, clock: ManualClock) -> list[str]:
    """resume_all in a new process: it waits out the dead runner's workflow lease (30 s) first."""
    resuming = asyncio.ensure_future(wf.resume_all())
    for _ in range(200):  # until it is done: on a busy machine it may reach its wait after a fixed number of steps
        if resuming.done():
            break
        await clock.advance(10)
        await asyncio.sleep(0.01)
    return await resuming


async def back_asleep(clock: ManualClock, sleepers: int) -> None:
    """Wait (real time, bounded) until `sleepers` tasks wait on the clock again: whatever they read or wrote
    before sleeping has landed, however slow the machine."""
    for _ in range(1000):
        if clock.sleepers >= sleepers:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{clock.sleepers} tasks wait on the clock, not {sleepers}")


def test_bad_definitions_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        WorkflowDefinition(name="x", steps=[WorkflowStep(name="a", action="a", depends_on=["b"]),
                                            WorkflowStep(name="b", action="a", depends_on=["a"])])
    with pytest.raises(ValueError, match='"a" depends on "zzz", which is not registered'):
        WorkflowDefinition(name="x", steps=[WorkflowStep(name="a", action="a", depends_on=["zzz"])])
    with pytest.raises(ValueError, match="step names must be unique: a"):
        WorkflowDefinition(name="x", steps=[WorkflowStep(name="a", action="a"), WorkflowStep(name="a", action="b")])
    assert issubclass(RegistrationError, ValueError)
    assert launch().order() == ["cost", "risk", "decide"]


async def test_independent_steps_run_together_and_dependents_get_their_results() -> None:
    wf = engine()
    both_started = asyncio.Event()
    started: list[str] = []

    async def ask(value: Any, deps: dict[str, Any]) -> Any:
        started.append(value)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), 1)  # sequential steps would time out here
        return f"{value}-ok"

    async def decide(value: Any, deps: dict[str, Any]) -> Any:
        return {"input": value, "deps": deps}

    wf.register_action("ask", ask)
    wf.register_action("decide", decide)
    workflow_id = await wf.start(launch(), input={"budget": 5})
    state = await wf.get(workflow_id)
    assert workflow_id == "wf-1" and state["status"] == "completed" and state["error"] is None
    # A step without its own input gets the workflow's.
    assert state["steps"]["decide"]["result"] == {"input": {"budget": 5}, "deps": {"cost": "cfo-ok", "risk": "cto-ok"}}
    assert {s["attempts"] for s in state["steps"].values()} == {1}
    assert state["steps"]["cost"]["started_at"] == "2026-01-01T00:00:00+00:00"


async def test_a_step_starts_as_soon_as_its_own_dependencies_are_done() -> None:
    wf = engine()
    fast_done = asyncio.Event()

    async def slow(value: Any, deps: dict[str, Any]) -> Any:
        await asyncio.wait_for(fast_done.wait(), 1)  # only finishes once "after_fast" ran
        return "slow"

    async def fast(value: Any, deps: dict[str, Any]) -> Any:
        return "fast"

    async def after(value: Any, deps: dict[str, Any]) -> Any:
        fast_done.set()
        return deps

    for name, fn in (("slow", slow), ("fast", fast), ("after", after)):
        wf.register_action(name, fn)
    workflow_id = await wf.start(WorkflowDefinition(name="eager", steps=[
        WorkflowStep(name="slow", action="slow"), WorkflowStep(name="fast", action="fast"),
        WorkflowStep(name="after_fast", action="after", depends_on=["fast"])]))
    state = await wf.get(workflow_id)
    assert state["status"] == "completed" and state["steps"]["after_fast"]["result"] == {"fast": "fast"}


async def test_retries_then_success_and_retries_then_failure() -> None:
    wf = engine()
    calls: dict[str, int] = {"flaky": 0, "broken": 0, "after": 0}

    async def flaky(value: Any, deps: dict[str, Any]) -> Any:
        calls["flaky"] += 1
        if calls["flaky"] < 3:
            raise RuntimeError("down")
        return "up"

    async def broken(value: Any, deps: dict[str, Any]) -> Any:
        calls["broken"] += 1
        raise RuntimeError("down for good")

    async def after(value: Any, deps: dict[str, Any]) -> Any:
        calls["after"] += 1

    for name, fn in (("flaky", flaky), ("broken", broken), ("after", after)):
        wf.register_action(name, fn)
    ok = await wf.get(await wf.start(WorkflowDefinition(name="f", steps=[
        WorkflowStep(name="s", action="flaky", retries=2)])))
    assert ok["status"] == "completed" and ok["steps"]["s"] | {"started_at": None, "finished_at": None} == {
        "status": "completed", "result": "up", "error": None, "attempts": 3, "started_at": None, "finished_at": None}

    failed = await wf.get(await wf.start(WorkflowDefinition(name="g", steps=[
        WorkflowStep(name="s", action="broken", retries=1), WorkflowStep(name="t", action="after", depends_on=["s"])])))
    assert failed["status"] == "failed" and calls["broken"] == 2 and calls["after"] == 0
    assert failed["error"] == "step 's' failed: RuntimeError: down for good"
    assert failed["steps"]["s"]["status"] == "failed" and failed["steps"]["s"]["attempts"] == 2
    assert failed["steps"]["t"]["status"] == "pending"


async def test_a_result_that_is_not_json_fails_the_step() -> None:
    wf = engine()

    async def odd(value: Any, deps: dict[str, Any]) -> Any:
        return {1, 2}

    wf.register_action("odd", odd)
    state = await wf.get(await wf.start(WorkflowDefinition(name="o", steps=[WorkflowStep(name="s", action="odd")])))
    assert state["status"] == "failed" and state["steps"]["s"]["error"].startswith("TypeError")


async def test_starting_an_existing_id_does_not_run_it_again() -> None:
    wf = engine()
    calls = 0

    async def count(value: Any, deps: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        return calls

    wf.register_action("count", count)
    definition = WorkflowDefinition(name="once", steps=[WorkflowStep(name="s", action="count")])
    assert await wf.start(definition, workflow_id="w") == "w"
    assert await wf.start(definition, workflow_id="w") == "w"
    assert calls == 1
    with pytest.raises(ConflictError, match="another definition"):
        await wf.start(WorkflowDefinition(name="other", steps=[WorkflowStep(name="s", action="count")]),
                       workflow_id="w")
    assert (await wf.run("w"))["steps"]["s"]["result"] == 1  # a finished workflow is returned as it is
    with pytest.raises(NotFoundError, match="no action registered as nope"):
        await wf.start(WorkflowDefinition(name="x", steps=[WorkflowStep(name="s", action="nope")]))
    with pytest.raises(NotFoundError):
        await wf.get("missing")


async def test_concurrent_runs_of_one_workflow_share_one_execution() -> None:
    store = InMemoryStateStore()
    wf = engine(store)
    gate = asyncio.Event()
    calls = 0

    async def gated(value: Any, deps: dict[str, Any]) -> Any:
        nonlocal calls
        calls += 1
        await gate.wait()
        return "done"

    wf.register_action("gated", gated)
    starting = asyncio.ensure_future(wf.start(WorkflowDefinition(name="g", steps=[
        WorkflowStep(name="s", action="gated")]), workflow_id="w"))
    await asyncio.sleep(0.01)
    again = asyncio.ensure_future(wf.run("w"))
    resumed = asyncio.ensure_future(wf.resume_all())
    await asyncio.sleep(0.01)
    gate.set()
    await starting
    assert (await again)["status"] == "completed" and await resumed == ["w"]
    assert calls == 1


def recorder(calls: list[str], crash: dict[str, bool]) -> tuple[Any, Any]:
    async def ask(value: Any, deps: dict[str, Any]) -> Any:
        calls.append(value)
        return f"{value}-ok"

    async def decide(value: Any, deps: dict[str, Any]) -> Any:
        calls.append("decide")
        if crash["now"]:
            raise Crash("process dies mid-step")
        return sorted(deps.values())

    return ask, decide


async def test_a_workflow_resumes_after_a_crash_without_rerunning_done_steps(tmp_path: Path) -> None:
    calls: list[str] = []
    crash = {"now": True}
    ask, decide = recorder(calls, crash)

    store = SqliteStateStore(tmp_path / "wf.db")
    first = engine(store)
    first.register_action("ask", ask)
    first.register_action("decide", decide)
    with pytest.raises(Crash):
        await first.start(launch(), workflow_id="launch-1")
    assert (await first.get("launch-1"))["steps"]["decide"]["status"] == "running"
    await store.close()

    crash["now"] = False
    store = SqliteStateStore(tmp_path / "wf.db")  # a new process on the same file
    clock = ManualClock()
    second = engine(store, clock)
    second.register_action("ask", ask)
    second.register_action("decide", decide)
    assert await resume_after_the_lease(second, clock) == ["launch-1"]
    state = await second.get("launch-1")
    assert state["status"] == "completed"
    assert state["steps"]["decide"]["result"] == ["cfo-ok", "cto-ok"]
    assert state["steps"]["decide"]["attempts"] == 2 and state["steps"]["cost"]["attempts"] == 1
    assert sorted(calls) == ["cfo", "cto", "decide", "decide"]  # the done steps ran once
    assert await second.resume_all() == []
    await store.close()


async def test_a_cancelled_run_resumes_from_the_stored_state(tmp_path: Path) -> None:
    calls: list[str] = []
    second_started = asyncio.Event()

    async def step(value: Any, deps: dict[str, Any]) -> Any:
        calls.append(value)
        if value == "two" and not second_started.is_set():
            second_started.set()
            await asyncio.Event().wait()  # hangs until cancelled: the process goes away here
        return value

    store = SqliteStateStore(tmp_path / "wf.db")
    first = engine(store)
    first.register_action("step", step)
    chain = WorkflowDefinition(name="chain", steps=[
        WorkflowStep(name="one", action="step", input="one"),
        WorkflowStep(name="two", action="step", input="two", depends_on=["one"]),
        WorkflowStep(name="three", action="step", input="three", depends_on=["two"])])
    task = asyncio.ensure_future(first.start(chain, workflow_id="c"))
    await asyncio.wait_for(second_started.wait(), 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await store.close()

    store = SqliteStateStore(tmp_path / "wf.db")
    clock = ManualClock()
    second = engine(store, clock)
    second.register_action("step", step)
    await resume_after_the_lease(second, clock)
    state = await second.get("c")
    assert state["status"] == "completed" and [state["steps"][n]["result"] for n in ("one", "two", "three")] == [
        "one", "two", "three"]
    assert calls == ["one", "two", "two", "three"]
    await store.close()


async def test_a_workflow_runs_on_one_worker_while_its_lease_holds(tmp_path: Path) -> None:
    clock = ManualClock()
    store = SqliteStateStore(tmp_path / "wf.db")
    gate, started = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def gated(value: Any, deps: dict[str, Any]) -> Any:
        calls.append(value)
        started.set()
        await gate.wait()
        return value

    a, b = engine(store, clock), engine(store, clock)  # two workers sharing the store
    for wf in (a, b):
        wf.register_action("gated", gated)
    definition = WorkflowDefinition(name="g", steps=[WorkflowStep(name="s", action="gated", input="x")])
    running = asyncio.ensure_future(a.start(definition, workflow_id="w"))
    await asyncio.wait_for(started.wait(), 5)
    resumed = asyncio.ensure_future(b.resume_all())  # as a second instance starting up
    for _ in range(6):  # a minute: the runner keeps renewing, so b never takes it over
        await back_asleep(clock, 2)  # a's renewal written and b's look taken (storage is on its own thread)
        await clock.advance(10)
    await back_asleep(clock, 2)
    assert calls == ["x"] and not resumed.done()
    gate.set()
    await running
    await clock.advance(10)  # b looks again: finished, nothing to run
    assert await resumed == ["w"] and calls == ["x"]
    assert (await b.get("w"))["status"] == "completed"
    await store.close()
