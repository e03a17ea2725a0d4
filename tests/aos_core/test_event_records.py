"""Events accepted once by id, with each target's result stored by event id (kernel.submit)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents import BaseAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import NotFoundError
from aos_core.event_records import EventRecord, EventRecords, record_key
from aos_core.events import Event
from aos_core.ports import AgentResult, Document
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore, SqliteStateStore


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


# --- EventRecords on its own (SQLite store, manual clock) -----------------------------------------------------


@pytest.fixture
async def records(tmp_path: Path) -> AsyncIterator[tuple[EventRecords, SqliteStateStore, ManualClock]]:
    store = SqliteStateStore(tmp_path / "records.db")
    clock = ManualClock()
    yield EventRecords(store, clock), store, clock
    await store.close()


Records = tuple[EventRecords, SqliteStateStore, ManualClock]


async def test_a_record_keeps_what_was_accepted_and_a_resend_gets_the_first_one(records: Records) -> None:
    er, store, clock = records
    event = Event(id="m-1", type="note", source="cli", data={"n": 1})
    first, created = await er.accept(event, ["b", "a"], kind="message", topic="agent.messages")
    assert (created, first.repeat, first.status) == (True, False, "pending")
    stored = await store.get("events/m-1")
    assert stored is not None and stored.value == {
        "id": "m-1", "type": "note", "kind": "message", "topic": "agent.messages", "targets": ["b", "a"],
        "accepted_at": "2026-01-01T00:00:00+00:00", "event": event.to_dict()}
    await clock.advance(5)
    again, created = await er.accept(Event(id="m-1", type="other"), ["c"])
    assert (created, again.repeat) == (False, True)
    read = await er.get("m-1")
    assert read is not None and read.repeat is False
    for record in (first, again, read):
        assert (record.id, record.type, record.kind, record.topic, record.targets, record.event) == (
            "m-1", "note", "message", "agent.messages", ["b", "a"], event.to_dict())
        assert record.to_dict() == {"id": "m-1", "status": "pending", "type": "note", "kind": "message",
                                    "accepted_at": "2026-01-01T00:00:00+00:00", "targets": ["b", "a"],
                                    "results": []}


async def test_a_record_stored_before_kind_topic_and_event_existed_still_reads(records: Records) -> None:
    er, store, _ = records
    await store.put("events/old-1", {"id": "old-1", "type": "t", "accepted_at": "2026-01-01T00:00:00+00:00",
                                     "targets": []})
    record = await er.get("old-1")
    assert record is not None
    assert (record.kind, record.topic, record.event, record.status) == ("event", None, {}, "completed")


async def test_results_read_back_in_target_order_and_missing_names_who_has_not_answered(records: Records) -> None:
    er, _, _ = records
    accepted, _ = await er.accept(Event(id="e", type="t"), ["a", "b", "c"])
    assert (accepted.kind, accepted.topic) == ("event", None)
    assert (await er.add_result("e", AgentResult("c", "completed", 3))) is True
    assert (await er.add_result("e", AgentResult("c", "failed", error="again"))) is False  # a redelivery
    await er.add_result("e", AgentResult("zz", "completed"))  # not a target (any more): read last
    record = await er.get("e")
    assert record is not None and record.status == "pending"
    assert record.missing() == ["a", "b"]
    await er.add_result("e", AgentResult("a", "completed"))
    record = await er.get("e")
    assert record is not None and record.missing() == ["b"]
    assert [r["agent_id"] for r in record.results] == ["a", "c", "zz"]
    assert record.results[1] == {"agent_id": "c", "status": "completed", "result": 3}
    assert await er.has_result("e", "c") and not await er.has_result("e", "b")
    assert await er.exists("e") and not await er.exists("nope")


@pytest.mark.parametrize(("statuses", "expected"), [
    (["completed", "completed"], "completed"), (["rejected", "completed"], "rejected"),
    (["rejected", "failed"], "failed"), (["completed", "failed"], "failed"), (["accepted", "completed"], "completed"),
])
async def test_the_status_of_an_answered_event(records: Records, statuses: list[str], expected: str) -> None:
    er, _, _ = records
    await er.accept(Event(id="s", type="t"), ["a", "b"])
    for agent, status in zip(["a", "b"], statuses, strict=True):
        await er.add_result("s", AgentResult(agent, status))
    record = await er.get("s")
    assert record is not None and record.status == expected and record.missing() == []


async def test_handed_over_targets_accumulate_without_rewriting_what_is_known(records: Records) -> None:
    er, store, _ = records
    assert await er.handed_over("e") == set()
    await er.mark_handed_over([("e", ["a"])])
    await er.mark_handed_over([("e", ["b", "a"])])
    doc = await store.get("events/e/handover")
    assert doc is not None and doc.value == {"agents": ["a", "b"]}
    await er.mark_handed_over([("e", ["a"])])  # nothing new: no write
    again = await store.get("events/e/handover")
    assert again is not None and again.etag == doc.etag
    assert await er.handed_over("e") == {"a", "b"}


async def test_a_dead_letter_keeps_the_reason_under_an_id_derived_from_source_and_message(records: Records) -> None:
    er, store, clock = records
    await clock.advance(1)
    dead_id = await er.dead_letter("orders", "msg-1", "handler failed", "x" * 5000, delivery_count=3)
    assert dead_id == hashlib.sha256(b"orders|msg-1").hexdigest()
    doc = await store.get(f"deadletters/{dead_id}")
    assert doc is not None and doc.value == {
        "topic": "orders", "message_id": "msg-1", "reason": "handler failed", "delivery_count": 3,
        "recorded_at": "2026-01-01T00:00:01+00:00", "body": "x" * 4096}
    anonymous = await er.dead_letter("orders", None, "not JSON", "{nope")
    body_hash = hashlib.sha256(b"{nope").hexdigest()
    assert anonymous == hashlib.sha256(f"orders|{body_hash}".encode()).hexdigest()
    assert anonymous != await er.dead_letter("orders", None, "not JSON", "{nope!")


def test_an_odd_id_becomes_a_hashed_key() -> None:
    assert record_key("a/b") == "events/~" + hashlib.sha256(b"a/b").hexdigest()
    assert record_key("x" * 120) == "events/" + "x" * 120
    assert record_key("x" * 121) == "events/~" + hashlib.sha256(b"x" * 121).hexdigest()


class ReadCounting(InMemoryStateStore):
    """The in-memory store, counting reads: what a wait costs in storage requests."""

    reads = 0

    async def get(self, key: str) -> Document | None:
        self.reads += 1
        return await super().get(key)

    async def list(self, prefix: str = "", **kwargs: Any) -> list[Document]:  # type: ignore[override]
        self.reads += 1
        return await super().list(prefix, **kwargs)


def start_waiter(er: EventRecords, clock: ManualClock, seconds: float) -> tuple[asyncio.Task[Any], list[float]]:
    """A task waiting for event "w", and the list that gets the clock's time when it returns."""
    woke_at: list[float] = []

    async def waiter() -> EventRecord | None:
        record = await er.wait("w", seconds)
        woke_at.append(clock.monotonic())
        return record

    return asyncio.create_task(waiter()), woke_at


async def test_wait_wakes_when_the_result_is_written_here_and_reads_nothing() -> None:
    clock = ManualClock()
    store = ReadCounting()
    er = EventRecords(store, clock)
    await er.accept(Event(id="w", type="t"), ["a", "b"])
    task, woke_at = start_waiter(er, clock, 10.0)
    await clock.advance(0.1)
    await er.add_result("w", AgentResult("a", "completed"))
    await clock.advance(0.05)
    assert not task.done()  # one of two targets answered
    await er.add_result("w", AgentResult("b", "completed", result={"n": 1}))
    record = await asyncio.wait_for(task, 10)  # a wait that never returns fails here, not at the suite's timeout
    assert record is not None and record.status == "completed" and record.results[1]["result"] == {"n": 1}
    assert woke_at == [pytest.approx(0.15)] and store.reads == 0 and clock.sleepers == 0
    assert (await er.wait("w", 1.0)) is not None and clock.sleepers == 0  # settled: no wait at all


async def test_wait_reads_storage_ever_less_often_for_results_written_elsewhere() -> None:
    clock = ManualClock()  # an in-memory store: each poll completes within the clock's settling
    store = ReadCounting()
    here, elsewhere = EventRecords(store, clock), EventRecords(store, clock)
    assert await here.wait("unknown", 5) is None
    await here.accept(Event(id="w", type="t"), ["a"])
    task, woke_at = start_waiter(here, clock, 5.0)
    await clock.advance(0.6)
    await elsewhere.add_result("w", AgentResult("a", "completed"))  # another instance's mailbox
    await clock.advance(1.0)
    record = await asyncio.wait_for(task, 10)
    # Reads at 0.5 (pending) and 1.5: the first after the result was stored.
    assert record is not None and record.status == "completed"
    assert woke_at == [pytest.approx(1.5)]


async def test_wait_gives_up_at_its_deadline_with_the_pending_record() -> None:
    clock = ManualClock()
    er = EventRecords(InMemoryStateStore(), clock)
    await er.accept(Event(id="p", type="t"), ["a"])
    task = asyncio.create_task(er.wait("p", 0.5))
    await clock.advance(0.49)
    assert not task.done()
    await clock.advance(0.01)
    record = await asyncio.wait_for(task, 10)
    assert record is not None and record.status == "pending" and clock.monotonic() == pytest.approx(0.5)
    zero = await asyncio.wait_for(er.wait("p", 0), 10)
    assert zero is not None and zero.status == "pending"


async def test_purge_pages_past_a_full_page_of_young_records(records: Records) -> None:
    er, store, clock = records
    await er.dead_letter("orders", "m", "r", "b")  # another prefix: never read by a purge
    for name in ("y1", "y2", "y3"):  # these sort first and fill the first page
        await er.accept(Event(id=name, type="t"), [])
    await clock.advance(-100)  # accepted earlier than the others, so old by the time of the purge
    for name in ("z1", "z2", "z3"):
        await er.accept(Event(id=name, type="t"), [])
    await clock.advance(100 + 60)
    counts = [await er.purge(older_than=120, limit=3) for _ in range(3)]
    assert counts == [0, 3, 0]  # young page, old page, then back to the start (young only)
    assert [d.key for d in await store.list("events/")] == ["events/y1", "events/y2", "events/y3"]
    assert len(await store.list("deadletters/")) == 1


async def test_purge_takes_a_record_exactly_at_its_retention_with_its_results(records: Records) -> None:
    er, store, clock = records
    await er.accept(Event(id="e", type="t"), ["a"])
    await er.add_result("e", AgentResult("a", "completed"))
    await er.mark_handed_over([("e", ["a"])])
    await clock.advance(60)
    assert await er.purge(older_than=60.5) == 0
    assert await er.purge(older_than=60) == 1
    assert await store.list("events/") == []


class Echo(BaseAgent):
    agent_type = "echo"

    async def handle_event(self, event: Event) -> Any:
        return event.data


async def test_a_resent_pending_event_reaches_only_missing_targets_with_the_first_payload(
        aos: AgentOperatingSystem) -> None:
    aos.register_type(Echo)
    for agent_id in ("x1", "x2"):
        await aos.register_agent("echo", agent_id=agent_id, subscribe=["note"])
    # A process recorded the event, x1 answered, then it died before x2 got it.
    await aos.records.accept(Event(id="n-1", type="note", data={"v": "first"}), ["x1", "x2"])
    await aos.records.add_result("n-1", AgentResult("x1", "completed", {"v": "first"}))
    record = await aos.submit(Event(id="n-1", type="note", data={"v": "resent"}))
    assert record.status == "completed"
    assert {r["agent_id"]: r["result"] for r in record.results} == {"x1": {"v": "first"}, "x2": {"v": "first"}}
    entries = await aos.audit.entries(action="event.accepted", subject="event/n-1")
    assert len(entries) == 1  # the missing audit entry is repaired once


async def test_a_batch_audits_each_accepted_event_once_before_any_agent_runs(aos: AgentOperatingSystem) -> None:
    aos.register_type(Echo)
    await aos.register_agent("echo", agent_id="x1", subscribe=["note"])
    seen: list[int] = []
    handle = Echo.handle_event

    async def audited_first(self: Echo, event: Event) -> Any:  # what the audit log holds when the agent runs
        seen.append(len(await aos.audit.entries(action="event.accepted", limit=1000)))
        return await handle(self, event)

    Echo.handle_event = audited_first  # type: ignore[method-assign]
    try:
        batch = [Event(id=f"b-{i}", type="note", data={"i": i}) for i in range(5)]
        records = await aos.submit_many([*batch, Event(id="b-0", type="note")])  # one id twice in one batch
    finally:
        Echo.handle_event = handle  # type: ignore[method-assign]
    assert [r.status for r in records] == ["completed"] * 6
    entries = await aos.audit.entries(action="event.accepted", limit=1000)
    assert [e.subject for e in entries] == [f"event/b-{i}" for i in range(5)]  # in batch order
    assert seen and min(seen) == 5
    assert (await aos.audit.verify()).ok
