"""Two kernels over one SQLite state file, as two Functions instances share Storage: routing is shared truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.storage import SqliteStateStore


@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[tuple[AgentOperatingSystem, AgentOperatingSystem]]:
    kernels, stores = [], []
    for _ in range(2):  # two stores on one file: two processes' connections
        store = SqliteStateStore(tmp_path / "state.db")
        kernel = AgentOperatingSystem(AOSConfig(data_dir=tmp_path / "data"), store=store, clock=ManualClock())
        await kernel.initialize()
        kernels.append(kernel)
        stores.append(store)
    yield kernels[0], kernels[1]
    for kernel, store in zip(kernels, stores, strict=True):
        await kernel.shutdown()
        await store.close()


async def test_an_agent_registered_through_one_worker_is_routed_by_the_other_at_once(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem]) -> None:
    a, b = workers
    for i in range(20):
        await a.register_agent("tally", agent_id=f"fresh-{i}", subscribe=[f"fresh{i}.*"])
        results = await b.process_event(Event(source="test", type=f"fresh{i}.ping"))
        assert [(r.agent_id, r.status) for r in results] == [(f"fresh-{i}", "completed")]


async def test_a_subscription_change_and_a_termination_through_one_worker_apply_on_the_other(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem]) -> None:
    a, b = workers
    await a.register_agent("tally", agent_id="t", subscribe=["one.*"])
    assert [r.agent_id for r in await b.process_event(Event(source="test", type="one.x"))] == ["t"]
    await a.register_agent("tally", agent_id="t", subscribe=["two.*"])  # adds a pattern to its record
    assert [r.agent_id for r in await b.process_event(Event(source="test", type="two.x"))] == ["t"]
    await a.terminate_agent("t")
    assert await b.process_event(Event(source="test", type="two.x")) == []
    assert await b.process_event(Event(source="test", type="one.x")) == []


async def test_a_worker_far_behind_reloads_every_record(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem]) -> None:
    a, b = workers
    for i in range(300):  # more changes than the generation document keeps
        await a.registry.changed(f"nobody-{i}")
    await a.register_agent(TallyAgent("late"), subscribe=["late.*"])
    assert [r.agent_id for r in await b.process_event(Event(source="test", type="late.x"))] == ["late"]


async def test_many_registrations_at_once_on_both_workers_all_succeed_and_both_route_to_every_agent(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem]) -> None:
    a, b = workers
    count = 600  # each registration bumps the one generation document; one by one, they lost 50 races in a row
    await asyncio.gather(*((a if i % 2 else b).register_agent("tally", agent_id=f"many-{i}", subscribe=[f"m{i}.*"])
                           for i in range(count)))
    for worker in (a, b):
        for i in range(0, count, 7):
            results = await worker.process_event(Event(source="test", type=f"m{i}.ping"))
            assert [r.agent_id for r in results] == [f"many-{i}"]


async def test_a_worker_does_not_reload_the_registry_for_its_own_bulk_registration(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem], monkeypatch: pytest.MonkeyPatch) -> None:
    # More registrations than the generation document names: before, the next event on the worker that made
    # them read every agent record again (23 s with 100,000 agents). A change the other worker makes in
    # between is still picked up, with the ones after it.
    a, b = workers
    await asyncio.gather(*(a.register_agent("tally", agent_id=f"bulk-{i}", subscribe=[f"b{i}.*"])
                           for i in range(150)))
    await b.register_agent("tally", agent_id="from-b", subscribe=["fromb.*"])  # a gap in a's own numbers
    await asyncio.gather(*(a.register_agent("tally", agent_id=f"bulk-{i}", subscribe=[f"b{i}.*"])
                           for i in range(150, 300)))
    listed: list[str] = []
    store_list = a.store.list

    async def counting_list(prefix: str, **options: object) -> object:
        listed.append(prefix)
        return await store_list(prefix, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(a.store, "list", counting_list)
    assert [r.agent_id for r in await a.process_event(Event(source="test", type="fromb.x"))] == ["from-b"]
    assert [r.agent_id for r in await a.process_event(Event(source="test", type="b299.x"))] == ["bulk-299"]
    assert not [p for p in listed if p.startswith("registry/")]  # no reload of every record


async def test_an_eviction_writes_the_lifecycle_without_a_read_and_never_over_another_workers_change(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem], monkeypatch: pytest.MonkeyPatch) -> None:
    # A live agent's registry record is kept from its activation, so putting it to sleep is one conditional
    # write, not a read and a write; when another worker changed the record meanwhile, the write loses its ETag
    # race and the change is kept.
    a, b = workers
    await a.register_agent("tally", agent_id="t", subscribe=["one.*"])
    await a.process_event(Event(source="test", type="one.x"))  # live on a
    reads: list[str] = []
    registry_get = a.registry.get

    async def counting_get(agent_id: str) -> object:
        reads.append(agent_id)
        return await registry_get(agent_id)

    monkeypatch.setattr(a.registry, "get", counting_get)
    await a.dispatcher.drop("t")
    assert reads == [] and (await a.get_agent("t"))["state"] == "sleeping"
    await a.process_event(Event(source="test", type="one.x"))  # live again
    await b.register_agent("tally", agent_id="t", subscribe=["two.*"])  # the record changes under a's copy
    await a.dispatcher.drop("t")
    record = await b.registry.get("t")
    assert record is not None and record.config["subscribe"] == ["two.*"]  # not a's stale copy, ["one.*"]
    assert (await a.get_agent("t"))["state"] == "sleeping"


async def test_a_termination_on_another_worker_is_not_undone_when_this_one_puts_the_agent_to_sleep(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem]) -> None:
    # The agent is live on a when b terminates it; a's eviction used to write "sleeping" over "terminated" after
    # losing its ETag race, and the agent came back to life.
    a, b = workers
    await a.register_agent("tally", agent_id="t", subscribe=["one.*"])
    await a.process_event(Event(source="test", type="one.x"))  # live on a
    await b.terminate_agent("t")
    await a.dispatcher.drop("t")
    assert (await b.get_agent("t"))["state"] == "terminated"
    results = await a.send_message("t", Event(source="test", type="one.y"))
    assert results.status == "rejected"


async def test_an_event_reads_the_generation_document_only_when_another_worker_changed_it(
        workers: tuple[AgentOperatingSystem, AgentOperatingSystem], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = workers
    await a.register_agent("tally", agent_id="t", subscribe=["one.*"])
    reads: list[str] = []
    read = b.registry.generation

    async def counted() -> object:
        reads.append("generation")
        return await read()

    monkeypatch.setattr(b.registry, "generation", counted)
    for _ in range(5):  # only its ETag is read: routing here is current
        assert [r.agent_id for r in await b.process_event(Event(source="test", type="one.x"))] == ["t"]
    assert reads == ["generation"]  # the first event: b had not seen a's registration
    await a.register_agent("tally", agent_id="u", subscribe=["one.*"])
    assert [r.agent_id for r in await b.process_event(Event(source="test", type="one.x"))] == ["t", "u"]
    assert reads == ["generation", "generation"]
