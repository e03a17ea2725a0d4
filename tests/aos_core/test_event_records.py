"""Events accepted once by id, with each target's result stored by event id (kernel.submit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents import BaseAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import NotFoundError
from aos_core.event_records import EventRecords, record_key
from aos_core.events import Event
from aos_core.ports import AgentResult
from aos_core.testing import ManualClock
from services.storage import SqliteStateStore


class Boom(BaseAgent):
    agent_type = "boom"

    async def handle_event(self, event: Event) -> Any:
        raise RuntimeError("no")


@pytest.fixture
async def aos(tmp_path: Path) -> AsyncIterator[AgentOperatingSystem]:
    store = SqliteStateStore(tmp_path / "state.db")
    config = AOSConfig(data_dir=tmp_path, dispatch={"max_attempts": 1})  # a failure is final at once here
    kernel = AgentOperatingSystem(config, store=store, clock=ManualClock())
    await kernel.initialize()
    kernel.register_type(Boom)
    yield kernel
    await kernel.shutdown()
    await store.close()


async def test_an_event_is_applied_once_whatever_is_resent(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="t1", subscribe=["ping"])
    first = await aos.submit(Event(id="e1", type="ping"))
    assert (first.status, [r["result"] for r in first.results]) == ("completed", [{"total": 1}])
    again = await aos.submit(Event(id="e1", type="ping", data="different"))
    assert again.to_dict() == first.to_dict()
    assert (await aos.read_context("t1") or {})["state"]["total"] == 1


async def test_status_is_failed_when_any_target_fails(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("tally", agent_id="t1", subscribe=["ping"])
    await aos.register_agent("boom", agent_id="b1", subscribe=["ping"])
    record = await aos.submit(Event(id="e2", type="ping"))
    assert record.status == "failed" and sorted(record.targets) == ["b1", "t1"]
    assert {r["agent_id"]: r["status"] for r in record.results} == {"t1": "completed", "b1": "failed"}


async def test_a_message_to_an_unknown_agent_is_refused_before_it_is_recorded(aos: AgentOperatingSystem) -> None:
    with pytest.raises(NotFoundError):
        await aos.submit(Event(id="m1", type="hi"), to_agent="nobody")
    assert await aos.records.get("m1") is None


async def test_results_for_many_targets_land_without_lost_updates(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    records = EventRecords(store, ManualClock())
    targets = [f"a{n}" for n in range(50)]
    await records.accept(Event(id="fan", type="x"), targets)
    await asyncio.gather(*(records.add_result("fan", AgentResult(t, "completed", n)) for n, t in enumerate(targets)))
    await records.add_result("fan", AgentResult("a0", "failed", error="late duplicate"))  # ignored
    record = await records.get("fan")
    assert record is not None and record.status == "completed"
    assert [r["agent_id"] for r in record.results] == targets
    await store.close()


def test_odd_ids_cannot_alias_another_events_keys() -> None:
    assert record_key("plain-id.1:x") == "events/plain-id.1:x"
    assert record_key("a/results/b") != record_key("a") and "/" not in record_key("a/results/b")[len("events/"):]


async def test_old_records_are_purged_page_by_page_with_their_results(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "s.db")
    clock = ManualClock()
    records = EventRecords(store, clock)
    for n in range(5):
        await records.accept(Event(id=f"old{n}", type="x"), ["a1"])
        await records.add_result(f"old{n}", AgentResult("a1", "completed"))
    await clock.advance(3600)
    await records.accept(Event(id="new", type="x"), ["a1"])
    purged = 0
    for _ in range(6):  # pages of 4 documents: the pass goes on where the last one stopped
        purged += await records.purge(older_than=1800, limit=4)
    assert purged == 5
    assert [d.key for d in await store.list("events/")] == ["events/new"]
    await store.close()


async def test_the_tick_purges_records_past_their_retention(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    clock = ManualClock()
    kernel = AgentOperatingSystem(AOSConfig(data_dir=tmp_path, api={"event_retention": 60}), store=store, clock=clock)
    await kernel.initialize()
    await kernel.submit(Event(id="e-old", type="nobody"))
    await kernel.tick()
    assert await kernel.records.get("e-old") is not None
    await clock.advance(61)
    await kernel.tick()
    assert await kernel.records.get("e-old") is None
    await kernel.shutdown()
    await store.close()


class Picky(BaseAgent):
    agent_type = "picky"

    async def handle_event(self, event: Event) -> Any:
        from aos_core.errors import InvalidEventError

        raise InvalidEventError("data.amount is required")


async def test_an_event_only_refused_as_invalid_is_rejected_not_failed(aos: AgentOperatingSystem) -> None:
    aos.register_type(Picky)
    await aos.register_agent("picky", agent_id="p1", subscribe=["spend"])
    record = await aos.submit(Event(id="bad-1", type="spend", data={}))
    assert record.status == "rejected" and record.results[0]["error"] == "data.amount is required"
    assert (await aos.get_agent("p1"))["state"] == "running"  # bad input is not the agent's failure
    assert await aos.store.list("deadletters/") == []  # nor a poison event
