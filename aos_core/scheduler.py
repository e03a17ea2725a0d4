"""Cron schedules that become events when due (NCRONTAB: six fields, seconds first, like Functions timers).

Each due slot becomes ONE event:

    id      schedule:<schedule id>:<slot ISO time>   (a re-emit of the same slot is a duplicate downstream)
    source  aos/scheduler/<schedule id>
    type, subject                                    from the ScheduleSpec
    time    when it fired
    data    {"schedule": id, "slot": ISO time, "past_due": bool, "data": spec.data}

The last fired slot of each schedule is stored under `scheduler/<id>` (create-only the first time, then
with its ETag), so a restarted host never fires a slot twice. Slots missed while the host was down fire
once, as the latest missed slot with `past_due: true` (like the Functions timer's `IsPastDue`); so does a
slot that fires more than `past_due_after` seconds late. A schedule that never fired starts counting from
when it was added. If `emit` raises, the slot is not recorded and is retried, after `retry_delay` in `run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aos_core.clock import sleep_or_wake
from aos_core.config import ScheduleSpec
from aos_core.errors import ConfigError, ConflictError
from aos_core.events import Event
from aos_core.ports import Clock, StateStore

log = logging.getLogger(__name__)
_KEY = "scheduler/"


def cron_iter(expr: str, start: datetime) -> Any:
    """A croniter over `expr` after `start`: six fields are seconds-first NCRONTAB, five are standard cron."""
    from croniter import croniter  # imported where used: keeps `import aos_core` cheap

    fields = len(expr.split())
    if fields not in (5, 6):
        raise ValueError(f"expected 6 fields (seconds first) or 5, got {fields}")
    return croniter(expr, start, second_at_beginning=fields == 6)


class Scheduler:
    """Turns ScheduleSpecs into events on the clock; `run` is the loop, `run_due` one pass of it."""

    def __init__(self, clock: Clock, store: StateStore, emit: Callable[[Event], Awaitable[Any]], *,
                 past_due_after: float = 10.0, retry_delay: float = 5.0) -> None:
        self._clock, self._store, self._emit = clock, store, emit
        self._past_due_after = past_due_after
        self._retry_delay = retry_delay
        self._specs: dict[str, ScheduleSpec] = {}
        self._since: dict[str, datetime] = {}  # last fired slot (from the store) or when the schedule was added
        self._synced: set[str] = set()  # schedules whose stored record this scheduler has read
        self._retry_at: dict[str, datetime] = {}  # a failed emit waits this long in `run` before retrying
        self._wake = asyncio.Event()

    def add(self, spec: ScheduleSpec) -> None:
        """Start (or replace) a schedule; ConfigError naming the schedule if its cron is invalid."""
        now = self._clock.now()
        try:
            cron_iter(spec.cron, now).get_next(datetime)
        except Exception as exc:
            raise ConfigError(f"schedules.{spec.id}.cron: {spec.cron!r} is not a valid cron expression: {exc}"
                              ) from None
        if spec.id not in self._specs:
            self._since[spec.id] = now
        self._specs[spec.id] = spec
        self._wake.set()

    def remove(self, schedule_id: str) -> None:
        self._specs.pop(schedule_id, None)
        self._since.pop(schedule_id, None)
        self._synced.discard(schedule_id)
        self._retry_at.pop(schedule_id, None)
        self._wake.set()

    def schedules(self) -> list[ScheduleSpec]:
        return [self._specs[k] for k in sorted(self._specs)]

    def next_due(self) -> datetime | None:
        """The earliest next slot of an enabled schedule, as this scheduler last saw the store (`run_due`
        refreshes it), or the retry time of a failed emit; None without schedules."""
        due = []
        for schedule_id, spec in self._specs.items():
            if spec.enabled:
                slot = cron_iter(spec.cron, self._since[schedule_id]).get_next(datetime)
                due.append(max(slot, self._retry_at.get(schedule_id, slot)))
        return min(due) if due else None

    async def run_due(self, now: datetime | None = None) -> list[Event]:
        """Emit one event for every schedule with a slot at or before `now` (default: the clock's time).

        Returns the events recorded. A schedule whose emit raises is logged and left unrecorded (it fires
        again); the others still fire. A timer trigger passes its own time here.
        """
        fired = []
        for spec in [self._specs[k] for k in sorted(self._specs)]:
            if not spec.enabled:
                continue
            try:
                event = await self._fire(spec, now)
            except Exception:
                log.exception("schedule %s: emitting its event failed; it will be retried", spec.id)
                self._retry_at[spec.id] = self._clock.now() + timedelta(seconds=self._retry_delay)
                continue
            if event is not None:
                fired.append(event)
        return fired

    async def _fire(self, spec: ScheduleSpec, now: datetime | None = None) -> Event | None:
        now = now or self._clock.now()
        doc = await self._store.get(_KEY + spec.id)
        if doc is not None:
            # The stored slot is the truth: on first sight it says what was missed while no host ran (that
            # fires once, past due); later, another host may have fired since.
            stored = datetime.fromisoformat(doc.value["last_slot"])
            first = spec.id not in self._synced
            self._since[spec.id] = stored if first else max(self._since[spec.id], stored)
        self._synced.add(spec.id)
        slots = cron_iter(spec.cron, self._since[spec.id])
        slot = slots.get_next(datetime)
        if slot > now:
            return None
        skipped = False
        while (following := slots.get_next(datetime)) <= now:  # fire only the latest missed slot
            slot, skipped = following, True
        late = skipped or (now - slot).total_seconds() > self._past_due_after
        event = Event(id=f"schedule:{spec.id}:{slot.isoformat()}", source=f"aos/scheduler/{spec.id}",
                      type=spec.event_type, subject=spec.subject, time=now,
                      data={"schedule": spec.id, "slot": slot.isoformat(), "past_due": late, "data": spec.data})
        await self._emit(event)  # raises: the slot is not recorded and fires again
        self._retry_at.pop(spec.id, None)
        value = {"last_slot": slot.isoformat(), "fired_at": now.isoformat()}
        try:
            if doc is None:
                await self._store.put(_KEY + spec.id, value, if_none_match=True)
            else:
                await self._store.put(_KEY + spec.id, value, if_match=doc.etag)
        except ConflictError:
            # Another host recorded a slot meanwhile: it fired this one too, or a later one. The event ids
            # match, so downstream dedupe drops the copy; take its record and move on.
            latest = await self._store.get(_KEY + spec.id)
            if latest is not None:
                self._since[spec.id] = max(slot, datetime.fromisoformat(latest.value["last_slot"]))
            return None
        self._since[spec.id] = slot
        return event

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: fire what is due, then sleep on the clock until the next slot (or a change)."""
        relay = asyncio.ensure_future(_set_when(stop, self._wake))  # stopping wakes the sleep below
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.run_due()
                except Exception:  # run_due logs per schedule; this is a bug, not a reason to stop timers
                    log.exception("scheduler pass failed")
                due = self.next_due()
                wait = 60.0 if due is None else (due - self._clock.now()).total_seconds()
                if not self._wake.is_set() and not stop.is_set():
                    await sleep_or_wake(self._clock, max(wait, 0.0), self._wake)
        finally:
            relay.cancel()


async def _set_when(trigger: asyncio.Event, target: asyncio.Event) -> None:
    await trigger.wait()
    target.set()

