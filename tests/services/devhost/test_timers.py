from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aos_core.errors import ConfigError
from aos_core.testing import ManualClock
from services.devhost import host_db
from services.devhost.index import FunctionSpec, index_functions
from services.devhost.invoker import Invoker
from services.devhost.timers import Timers, timer_triggers
from services.sqlite import SqliteDatabase
from tests.services.devhost.conftest import until

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "host.db", schema=host_db.SCHEMA)
    yield database
    await database.close()


def _beat(monkeypatch: pytest.MonkeyPatch, schedule: str, *, run_on_startup: bool = False) -> tuple[list[FunctionSpec],
                                                                                                      list[bool]]:
    from tests.services.devhost.apps.sample_app import build_app

    monkeypatch.setenv("SAMPLE_SCHEDULE", schedule)
    monkeypatch.setenv("SAMPLE_TOPIC", "sample.events")
    app, calls = build_app()
    specs = [s for s in index_functions(app) if s.name == "beat"]
    if run_on_startup:
        specs[0].trigger["runOnStartup"] = True
    return specs, calls.timer


async def _run(specs: list[FunctionSpec], db: SqliteDatabase, clock: ManualClock) -> Timers:
    timers = Timers(timer_triggers(specs), db, Invoker(ThreadPoolExecutor(2)), clock, lambda spec: {})
    await timers.start()
    return timers


async def test_fires_on_its_six_field_schedule(db: SqliteDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    specs, runs = _beat(monkeypatch, "*/10 * * * * *")  # every 10 seconds, seconds first
    clock = ManualClock(START)
    timers = await _run(specs, db, clock)
    await until(lambda: _true(clock.sleepers == 1))
    for expected in (1, 2, 3):
        await clock.advance(10)
        await until(lambda n=expected: _true(len(runs) == n and clock.sleepers == 1))
    assert runs == [False, False, False]
    assert await db.read(lambda c: host_db.timer_last(c, "beat")) == "2026-03-01T12:00:30+00:00"
    await timers.stop()


async def test_a_slot_missed_while_down_fires_once_past_due(db: SqliteDatabase,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    specs, runs = _beat(monkeypatch, "0 * * * * *")  # every minute
    await db.write(lambda c: host_db.timer_record(c, "beat", START.isoformat(), START.isoformat()))
    clock = ManualClock(START.replace(minute=5, second=30))  # down for five slots
    timers = await _run(specs, db, clock)
    await until(lambda: _true(runs == [True] and clock.sleepers == 1))
    assert await db.read(lambda c: host_db.timer_last(c, "beat")) == "2026-03-01T12:05:00+00:00"
    await clock.advance(30)  # the next slot, on time
    await until(lambda: _true(runs == [True, False]))
    await timers.stop()


async def test_first_start_records_a_baseline_and_run_on_startup_fires(db: SqliteDatabase,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    specs, runs = _beat(monkeypatch, "0 0 * * * *")
    clock = ManualClock(START)
    timers = await _run(specs, db, clock)
    await until(lambda: _true(clock.sleepers == 1))
    assert runs == [] and await db.read(lambda c: host_db.timer_last(c, "beat")) == START.isoformat()
    await timers.stop()

    specs, runs = _beat(monkeypatch, "0 0 * * * *", run_on_startup=True)
    timers = await _run(specs, db, clock)
    await until(lambda: _true(runs == [False] and clock.sleepers == 1))
    await timers.stop()


def test_a_bad_schedule_or_missing_setting_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    specs, _ = _beat(monkeypatch, "every minute please")
    with pytest.raises(ConfigError, match=r"beat.*NCRONTAB"):
        timer_triggers(specs)
    monkeypatch.delenv("SAMPLE_SCHEDULE")
    with pytest.raises(ConfigError, match="SAMPLE_SCHEDULE"):
        timer_triggers(specs)


async def _true(value: bool) -> bool:
    return value
