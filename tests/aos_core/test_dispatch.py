from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agents import PerpetualAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.context import ContextMCPServer
from services.storage import SqliteStateStore


class Flaky(PerpetualAgent):
    agent_type = "flaky"
    broken = False

    async def initialize(self) -> None:
        if Flaky.broken:
            raise RuntimeError("cannot reach my database")
        await super().initialize()

    async def handle_event(self, event: Event) -> Any:
        if event.type == "boom":
            raise RuntimeError("exploded on purpose")
        self.state["ok"] = self.state.get("ok", 0) + 1
        if event.type == "unstorable":  # a result the event record cannot hold
            return {"when": {event.id}}
        return self.state["ok"]


async def settled(aos: AgentOperatingSystem, agent_id: str, state: str) -> bool:
    # Recovery does real SQLite I/O on its own thread: give it (bounded) real time to land.
    for _ in range(200):
        if (await aos.get_agent(agent_id))["state"] == state:
            return True
        await asyncio.sleep(0.01)
    return False


async def kernel(tmp_path: Path, clock: ManualClock, **dispatch: Any) -> AgentOperatingSystem:
    cfg = AOSConfig(data_dir=tmp_path, dispatch=dispatch,
                    lifecycle={"backoff_initial": 1.0, "backoff_multiplier": 2.0, "max_restarts": 2})
    aos = AgentOperatingSystem(cfg, store=SqliteStateStore(tmp_path / "state.db"), clock=clock)
    await aos.initialize()
    aos.register_type(Flaky)
    return aos


async def flaky_applied_once(tmp_path: Path, clock: ManualClock) -> AgentOperatingSystem:
    """A kernel with the Flaky agent f1, subscribed to everything, that has applied one `ok` event."""
    aos = await kernel(tmp_path, clock)
    await aos.register_agent("flaky", agent_id="f1", subscribe=["*"])
    assert (await aos.process_event(Event(type="ok")))[0].result == 1
    return aos


async def test_live_agents_are_bounded_and_state_survives_eviction(tmp_path: Path) -> None:
    aos = await kernel(tmp_path, ManualClock(), max_live_agents=10)
    aos.subscribe("hit", agent_type="tally")
    for _ in range(3):
        await asyncio.gather(*(aos.process_event(Event(type="hit", subject=f"a{i}")) for i in range(50)))
        assert aos.dispatcher.live_count <= 10
    assert aos.dispatcher.evictions >= 100
    for i in range(50):
        assert (await aos.agent_state(f"a{i}"))["state"]["total"] == 3  # type: ignore[index]
    dormant = await aos.list_agents(state="sleeping")
    assert len(dormant) >= 40
    await aos.shutdown()


async def test_idle_agents_are_evicted_by_the_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    aos = await kernel(tmp_path, clock, idle_timeout=60)
    await aos.register_agent("tally", agent_id="t1", subscribe=["*"])
    await aos.process_event(Event(type="x"))
    assert aos.dispatcher.is_live("t1")
    await clock.advance(31)
    assert aos.dispatcher.is_live("t1")
    await clock.advance(60)
    assert not aos.dispatcher.is_live("t1")
    assert (await aos.get_agent("t1"))["state"] == "sleeping"
    assert (await aos.process_event(Event(type="x")))[0].result == {"total": 2}
    assert (await aos.get_agent("t1"))["state"] == "running"
    await aos.shutdown()


async def test_write_behind_mode_saves_on_eviction(tmp_path: Path) -> None:
    aos = await kernel(tmp_path, ManualClock(), durability="memory", max_live_agents=1)
    aos.subscribe("x", agent_type="tally")
    for _ in range(3):
        await aos.process_event(Event(type="x", subject="a"))
    await aos.process_event(Event(type="x", subject="b"))  # evicts a, which saves
    store = SqliteStateStore(tmp_path / "state.db")
    stored = await ContextMCPServer("a", store).load_state()
    assert stored["total"] == 3
    await store.close()
    await aos.shutdown()


async def until_done(clock: ManualClock, *tasks: asyncio.Future[Any], step: float = 0.5, limit: int = 400) -> None:
    """Advance the clock in steps (letting real SQLite I/O land in between) until every task is done."""
    for _ in range(limit):
        if all(t.done() for t in tasks):
            return
        await clock.advance(step)
        await asyncio.sleep(0.005)
    raise AssertionError("still waiting after the clock ran out")


async def test_a_poison_event_is_retried_then_dead_lettered_and_events_behind_it_wait(tmp_path: Path) -> None:
    clock = ManualClock()
    aos = await flaky_applied_once(tmp_path, clock)
    boom = asyncio.ensure_future(aos.process_event(Event(id="poison-1", type="boom")))
    assert await settled(aos, "f1", "failed")
    later = asyncio.ensure_future(aos.process_event(Event(id="behind-1", type="ok")))  # sent during the back-off
    await asyncio.sleep(0.05)
    assert not later.done()  # it waits for the recovery instead of being turned away
    await until_done(clock, boom, later)
    failed = boom.result()[0]
    assert failed.status == "failed"
    assert "exploded on purpose" in (failed.error or "") and "after 3 attempts" in (failed.error or "")
    applied = later.result()[0]
    assert applied.status == "completed" and applied.result == 2  # the poison left no trace in the state
    assert (await aos.records.get("poison-1")).status == "failed"  # type: ignore[union-attr]
    dead = [d.value for d in await aos.store.list("deadletters/")]
    assert [(d["message_id"], d["topic"]) for d in dead] == [("poison-1", "agent/f1")]
    assert "exploded on purpose" in dead[0]["reason"]
    assert (await aos.get_agent("f1"))["state"] == "running"
    assert (await aos.process_event(Event(type="ok")))[0].result == 3
    await aos.shutdown()


async def test_a_handler_result_that_is_not_json_fails_its_event_and_commits_nothing(tmp_path: Path) -> None:
    clock = ManualClock()
    aos = await flaky_applied_once(tmp_path, clock)
    bad = asyncio.ensure_future(aos.process_event(Event(id="unstorable-1", type="unstorable")))
    await until_done(clock, bad)
    [failed] = bad.result()
    assert failed.status == "failed" and "not JSON" in (failed.error or "") and "set" in (failed.error or "")
    assert (await aos.records.get("unstorable-1")).status == "failed"  # type: ignore[union-attr]
    assert (await aos.process_event(Event(type="ok")))[0].result == 2  # its state change was not committed
    await aos.shutdown()


async def test_recovery_gives_up_after_max_restarts_and_says_why(tmp_path: Path) -> None:
    clock = ManualClock()
    aos = await flaky_applied_once(tmp_path, clock)
    Flaky.broken = True
    try:
        boom = asyncio.ensure_future(aos.process_event(Event(type="boom")))
        await until_done(clock, boom, step=100)
        result = boom.result()[0]
        assert result.status == "failed" and "gave up" in (result.error or "")
        info = await aos.get_agent("f1")
        assert info["state"] == "failed"
        assert "gave up after 2 restarts" in info["lifecycle"]["reason"]
        assert "cannot reach my database" in info["lifecycle"]["reason"]
    finally:
        Flaky.broken = False
        await aos.shutdown()


async def test_concurrent_first_events_activate_an_agent_once(tmp_path: Path) -> None:
    aos = await kernel(tmp_path, ManualClock())
    aos.subscribe("x", agent_type="tally")
    await asyncio.gather(*(aos.process_event(Event(type="x", subject="once")) for _ in range(100)))
    assert aos.dispatcher.activations == 1
    assert (await aos.agent_state("once"))["state"]["total"] == 100  # type: ignore[index]
    await aos.shutdown()


async def test_events_handed_over_together_are_committed_together_and_a_failing_one_goes_alone(
        tmp_path: Path) -> None:
    # What an entity operation carrying several events does: one commit per group of up to the dedupe window.
    aos = await kernel(tmp_path, ManualClock(), max_attempts=1, dedupe_window=4)
    await aos.register_agent("flaky", agent_id="f1")

    async def accepted(*events: Event) -> list[Event]:
        for event in events:
            await aos.records.accept(event, ["f1"], kind="message")
        return list(events)

    async def version() -> int:
        return int(((await aos.read_context("f1")) or {}).get("version", 0))

    six = await accepted(*(Event(id=f"ok{n}", type="hit") for n in range(6)))
    before = await version()
    assert [r.status for r in await aos.apply_deliveries("f1", six)] == ["completed"] * 6
    assert await version() == before + 2  # four, then two
    # A handler that raises: its group is not committed together; each event goes alone, as one would.
    mixed = await accepted(Event(id="m0", type="hit"), Event(id="m1", type="boom"), Event(id="m2", type="hit"))
    assert [r.status for r in await aos.apply_deliveries("f1", mixed)] == ["completed", "failed", "completed"]
    assert ((await aos.read_context("f1")) or {})["state"]["ok"] == 8
    failed = await aos.records.get("m1")
    assert failed is not None and failed.status == "failed" and "exploded on purpose" in str(failed.results)
    # Handed over again (a redelivered operation): nothing applies twice.
    assert {r.status for r in await aos.apply_deliveries("f1", [*six, *mixed])} == {"duplicate"}
    assert ((await aos.read_context("f1")) or {})["state"]["ok"] == 8
    await aos.shutdown()
