from __future__ import annotations

import pytest

from aos_core.config import ScheduleSpec
from aos_core.errors import ConfigError
from aos_core.events import Event
from aos_core.scheduler import Scheduler
from aos_core.testing import ManualClock
from services.storage import InMemoryStateStore


async def test_slots_fire_once_even_across_a_restart_and_a_gap_is_past_due() -> None:
    clock, store = ManualClock(), InMemoryStateStore()
    fired: list[Event] = []

    async def emit(event: Event) -> None:
        fired.append(event)

    spec = ScheduleSpec(id="report", cron="0 */5 * * * *", event_type="report.due", data={"k": 1})
    scheduler = Scheduler(clock, store, emit)
    scheduler.add(spec)
    await clock.advance(300)
    assert len(await scheduler.run_due()) == 1
    assert await scheduler.run_due() == []
    restarted = Scheduler(clock, store, emit)
    restarted.add(spec)
    assert await restarted.run_due() == []
    await clock.advance(3 * 300)  # the host was "down" for three slots
    late = await restarted.run_due()
    assert len(late) == 1 and late[0].data["past_due"] is True
    assert fired[0].id == "schedule:report:2026-01-01T00:05:00+00:00"
    assert fired[0].data == {"schedule": "report", "slot": "2026-01-01T00:05:00+00:00", "past_due": False,
                             "data": {"k": 1}}


async def test_a_failed_emit_is_retried() -> None:
    clock = ManualClock()
    calls = 0

    async def emit(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("no subscriber yet")

    scheduler = Scheduler(clock, InMemoryStateStore(), emit)
    scheduler.add(ScheduleSpec(id="s", cron="*/10 * * * *", event_type="t"))  # five fields: minutes
    await clock.advance(600)
    with pytest.raises(RuntimeError):
        await scheduler.run_due()
    assert len(await scheduler.run_due()) == 1


def test_bad_cron_names_the_schedule() -> None:
    async def emit(event: Event) -> None: ...

    with pytest.raises(ConfigError, match=r"schedules\.bad\.cron"):
        Scheduler(ManualClock(), InMemoryStateStore(), emit).add(ScheduleSpec(id="bad", cron="nope", event_type="t"))
