from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aos_core.config import ScheduleSpec
from aos_core.errors import ConfigError
from aos_core.events import Event
from aos_core.scheduler import Scheduler
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore, SqliteStateStore


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.failures = 0

    async def __call__(self, event: Event) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("no subscriber yet")
        self.events.append(event)

    def slots(self) -> list[str]:
        return [e.data["slot"][11:19] for e in self.events]


def report(**kwargs: object) -> ScheduleSpec:
    return ScheduleSpec(**{"id": "report", "cron": "0 */5 * * * *", "event_type": "report.due", "data": {"k": 1},
                           **kwargs})


async def test_six_field_cron_fires_each_slot_once_with_the_documented_event() -> None:
    clock, sink = ManualClock(), Sink()
    scheduler = Scheduler(clock, InMemoryStateStore(), sink)
    scheduler.add(report(subject="ceo"))
    assert scheduler.next_due() == datetime(2026, 1, 1, 0, 5, tzinfo=UTC)
    await clock.advance(299)
    assert await scheduler.run_due() == []
    await clock.advance(1)
    (event,) = await scheduler.run_due()
    assert await scheduler.run_due() == []
    assert event.id == "schedule:report:2026-01-01T00:05:00+00:00"
    assert (event.type, event.subject, event.source) == ("report.due", "ceo", "aos/scheduler/report")
    assert event.data == {"schedule": "report", "slot": "2026-01-01T00:05:00+00:00", "past_due": False,
                          "data": {"k": 1}}
    assert scheduler.next_due() == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


async def test_seconds_come_first_and_five_fields_are_standard_cron() -> None:
    clock, sink = ManualClock(), Sink()
    scheduler = Scheduler(clock, InMemoryStateStore(), sink)
    scheduler.add(ScheduleSpec(id="fast", cron="*/15 * * * * *", event_type="tick"))
    scheduler.add(ScheduleSpec(id="minutes", cron="*/10 * * * *", event_type="tock"))
    for _ in range(40):
        await clock.advance(15)
        await scheduler.run_due()
    assert [e.type for e in sink.events].count("tick") == 40
    assert [e.data["slot"][11:19] for e in sink.events if e.type == "tock"] == ["00:10:00"]


async def test_no_slot_fires_twice_across_a_restart_and_a_gap_fires_once_past_due(tmp_path: Path) -> None:
    clock, sink = ManualClock(), Sink()
    store = SqliteStateStore(tmp_path / "state.db")
    scheduler = Scheduler(clock, store, sink)
    scheduler.add(report())
    await clock.advance(300)
    assert len(await scheduler.run_due()) == 1
    await store.close()

    store = SqliteStateStore(tmp_path / "state.db")  # the host restarts
    restarted = Scheduler(clock, store, sink)
    restarted.add(report())
    assert await restarted.run_due() == []
    await clock.advance(3 * 300 + 42)  # down for three slots
    (late,) = await restarted.run_due()
    assert late.data["past_due"] is True and late.data["slot"] == "2026-01-01T00:20:00+00:00"
    assert sink.slots() == ["00:05:00", "00:20:00"]
    doc = await store.get("scheduler/report")
    assert doc is not None and doc.value["last_slot"] == "2026-01-01T00:20:00+00:00"
    await store.close()


async def test_one_late_slot_is_past_due_too() -> None:
    clock, sink = ManualClock(), Sink()
    scheduler = Scheduler(clock, InMemoryStateStore(), sink)
    scheduler.add(report())
    await clock.advance(300 + 5)
    assert (await scheduler.run_due())[0].data["past_due"] is False  # a few seconds is ordinary latency
    await clock.advance(300 + 60)
    assert (await scheduler.run_due())[0].data["past_due"] is True


async def test_a_failed_emit_is_not_recorded_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    clock, sink, store = ManualClock(), Sink(), InMemoryStateStore()
    scheduler = Scheduler(clock, store, sink, retry_delay=5)
    scheduler.add(report())
    scheduler.add(ScheduleSpec(id="other", cron="0 */5 * * * *", event_type="other"))
    await clock.advance(300)
    sink.failures = 1
    fired = await scheduler.run_due()
    assert [e.type for e in fired] == ["report.due"]  # "other" failed; the rest still fired
    assert "schedule other" in caplog.text
    assert await store.get("scheduler/other") is None
    assert scheduler.next_due() == datetime(2026, 1, 1, 0, 5, 5, tzinfo=UTC)  # the retry
    (retried,) = await scheduler.run_due()
    assert retried.id == "schedule:other:2026-01-01T00:05:00+00:00"


async def test_the_loop_sleeps_until_each_slot_and_stops_when_asked() -> None:
    clock, sink = ManualClock(), Sink()
    scheduler = Scheduler(clock, InMemoryStateStore(), sink)
    stop = asyncio.Event()
    loop = asyncio.ensure_future(scheduler.run(stop))
    await clock.advance(60)
    scheduler.add(report())  # added while the loop sleeps: it wakes and reschedules
    scheduler.add(report(id="off", enabled=False))
    await clock.advance(3600)
    assert sink.slots() == [f"00:{m:02d}:00" for m in range(5, 60, 5)] + ["01:00:00"]
    assert not any(e.data["past_due"] for e in sink.events)
    scheduler.remove("report")
    await clock.advance(600)
    assert len(sink.events) == 12
    stop.set()
    await asyncio.wait_for(loop, 1)
    assert clock.sleepers == 0


async def test_a_schedule_added_later_does_not_fire_slots_before_it_existed() -> None:
    clock, sink = ManualClock(), Sink()
    scheduler = Scheduler(clock, InMemoryStateStore(), sink)
    await clock.advance(420)
    scheduler.add(report())
    assert await scheduler.run_due() == []
    assert scheduler.next_due() == datetime(2026, 1, 1, 0, 10, tzinfo=UTC)


@pytest.mark.parametrize("cron", ["nope", "* * *", "0 0 0 * * * * *", "61 * * * * *"])
def test_bad_cron_names_the_schedule(cron: str) -> None:
    async def emit(event: Event) -> None: ...

    scheduler = Scheduler(ManualClock(), InMemoryStateStore(), emit)
    with pytest.raises(ConfigError, match=r"^schedules\.bad\.cron: "):
        scheduler.add(ScheduleSpec(id="bad", cron=cron, event_type="t"))
    assert scheduler.next_due() is None
