"""Cron schedules that become events when due (NCRONTAB: six fields, seconds first, like Functions timers).

The last fired slot of each schedule is stored, so a restarted host never fires a slot twice; a slot missed
while the host was down fires once, with `past_due: true`. Event data:
`{"schedule": id, "slot": iso time, "past_due": bool, "data": spec.data}`; the event id is
`schedule:<id>:<slot>`, so downstream dedupe makes a re-emit harmless.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aos_core.clock import sleep_or_wake
from aos_core.config import ScheduleSpec
from aos_core.errors import ConfigError, ConflictError
from aos_core.events import Event
from aos_core.ports import Clock, StateStore


def _cron(expr: str, start: datetime) -> Any:
    from croniter import croniter  # imported where used: keeps `import aos_core` cheap

    six = len(expr.split()) == 6
    return croniter(expr, start, second_at_beginning=six)


class Scheduler:
    def __init__(self, clock: Clock, store: StateStore, emit: Callable[[Event], Awaitable[Any]]) -> None:
        self._clock, self._store, self._emit = clock, store, emit
        self._specs: dict[str, ScheduleSpec] = {}
        self._started = clock.now()
        self._wake = asyncio.Event()

    def add(self, spec: ScheduleSpec) -> None:
        try:
            _cron(spec.cron, self._clock.now())
        except Exception as exc:
            raise ConfigError(f"schedules.{spec.id}.cron: {spec.cron!r} is not a valid cron expression") from exc
        self._specs[spec.id] = spec
        self._wake.set()

    def remove(self, schedule_id: str) -> None:
        self._specs.pop(schedule_id, None)

    async def _last(self, spec: ScheduleSpec) -> tuple[datetime, str | None]:
        doc = await self._store.get(f"scheduler/{spec.id}")
        if doc is None:
            return self._started, None
        return datetime.fromisoformat(doc.value["last_slot"]), doc.etag

    async def next_due(self) -> datetime | None:
        due = [_cron(s.cron, (await self._last(s))[0]).get_next(datetime) for s in self._specs.values()]
        return min(due) if due else None

    async def run_due(self) -> list[Event]:
        now = self._clock.now()
        fired = []
        for spec in list(self._specs.values()):
            last, etag = await self._last(spec)
            it = _cron(spec.cron, last)
            slot, missed = it.get_next(datetime), 0
            if slot > now:
                continue
            while (following := it.get_next(datetime)) <= now:  # jump to the latest missed slot
                slot, missed = following, missed + 1
            event = Event(id=f"schedule:{spec.id}:{slot.isoformat()}", source=f"aos/scheduler/{spec.id}",
                          type=spec.event_type, subject=spec.subject, time=now,
                          data={"schedule": spec.id, "slot": slot.isoformat(), "past_due": missed > 0,
                                "data": spec.data})
            await self._emit(event)  # raises: the slot is not recorded and fires again
            try:
                value = {"last_slot": slot.isoformat()}
                if etag is None:
                    await self._store.put(f"scheduler/{spec.id}", value, if_none_match=True)
                else:
                    await self._store.put(f"scheduler/{spec.id}", value, if_match=etag)
            except ConflictError:
                continue  # another host recorded it
            fired.append(event)
        return fired

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.run_due()
            due = await self.next_due()
            wait = 60.0 if due is None else max(0.0, (due - self._clock.now()).total_seconds())
            self._wake.clear()
            await sleep_or_wake(self._clock, wait, self._wake)
