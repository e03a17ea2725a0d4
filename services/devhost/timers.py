"""Timer triggers on their NCRONTAB schedule (six fields, seconds first), with the schedule monitor's memory.

The last slot of each timer is kept in the host's SQLite file. At start, a slot that passed while the host
was down fires once at once with `past_due=True` (as the Functions schedule monitor does); `runOnStartup`
fires once at start as well. A slot that fires more than `past_due_after` seconds late is also past due. A
function that raises is logged; the timer moves on to its next slot (Functions does not retry timers).
The cron arithmetic is the scheduler's (`aos_core.scheduler.cron_iter`), time comes from a Clock port.

With several instances (`aos serve --instances N`) each timer runs on one instance at a time, the holder of
its singleton lease `timer:<function>` (services/devhost/leases.py), as the Functions host runs a timer under
a singleton lock; a slot already recorded as fired (by the previous holder) is not fired again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.functions.timer import TimerRequest

from aos_core.errors import ConfigError
from aos_core.ports import Clock
from aos_core.scheduler import cron_iter
from services.devhost import host_db
from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.leases import Leases
from services.devhost.settings import resolve
from services.sqlite import SqliteDatabase

log = logging.getLogger("aos.devhost.timers")


@dataclass(frozen=True)
class TimerTrigger:
    spec: FunctionSpec
    schedule: str
    run_on_startup: bool
    use_monitor: bool

    def next_after(self, when: datetime) -> datetime:
        slot: datetime = cron_iter(self.schedule, when).get_next(datetime)
        return slot


def timer_triggers(functions: list[FunctionSpec]) -> list[TimerTrigger]:
    timers = []
    for spec in functions:
        if spec.trigger_type != "timerTrigger":
            continue
        schedule = str(resolve(spec.trigger.get("schedule"), f"function {spec.name}"))
        try:
            cron_iter(schedule, datetime.now()).get_next(datetime)
        except Exception as exc:
            raise ConfigError(f"function {spec.name}: schedule {schedule!r} is not a valid NCRONTAB expression "
                              f"(six fields, seconds first): {exc}") from None
        timers.append(TimerTrigger(spec, schedule, bool(spec.trigger.get("runOnStartup")),
                                   bool(spec.trigger.get("useMonitor", True))))
    return timers


class Timers:
    def __init__(self, timers: list[TimerTrigger], db: SqliteDatabase, invoker: Invoker, clock: Clock,
                 extra_inputs: Any, *, past_due_after: float = 10.0, leases: Leases | None = None) -> None:
        self.timers = timers
        self._db = db
        self._invoker = invoker
        self._clock = clock
        self._extra_inputs = extra_inputs
        self._past_due_after = past_due_after
        self._leases = leases
        self._tasks: list[asyncio.Task[None]] = []
        self.next_run: dict[str, datetime] = {}

    async def start(self) -> None:
        for timer in self.timers:
            self._tasks.append(asyncio.create_task(self.run(timer), name=f"timer:{timer.spec.name}"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def run(self, timer: TimerTrigger) -> None:
        """Run the timer's schedule while this instance holds its singleton lease (always, with no leases)."""
        lease = f"timer:{timer.spec.name}"
        while True:
            if self._leases is not None:
                await self._leases.wait_for(lease)
            await self._schedule(timer, lease)

    def _holding(self, lease: str) -> bool:
        return self._leases is None or self._leases.usable(lease)

    async def _schedule(self, timer: TimerTrigger, lease: str) -> None:
        name = timer.spec.name
        now = self._clock.now()
        raw = await self._db.read(lambda c: host_db.timer_last(c, name)) if timer.use_monitor else None
        last = datetime.fromisoformat(raw) if raw else None
        missed = None
        if last is not None:
            slot = timer.next_after(last)
            while slot <= now:  # the latest slot that passed while the host was down
                missed, slot = slot, timer.next_after(slot)
        if missed is not None or timer.run_on_startup:
            await self._fire(timer, missed or now, past_due=missed is not None, last=last)
        elif last is None:
            await self._record(name, now, None)  # start counting from now, so a restart knows what it missed
        anchor = max(missed or now, now)
        while True:
            slot = timer.next_after(anchor)
            self.next_run[name] = slot
            await self._clock.sleep((slot - self._clock.now()).total_seconds())
            if not self._holding(lease):
                return  # another instance has the timer now
            late = (self._clock.now() - slot).total_seconds()
            await self._fire(timer, slot, past_due=late > self._past_due_after, last=anchor)
            anchor = slot

    async def _fire(self, timer: TimerTrigger, slot: datetime, *, past_due: bool, last: datetime | None) -> None:
        if self._leases is not None and timer.use_monitor:  # the previous holder may have fired it already
            raw = await self._db.read(lambda c: host_db.timer_last(c, timer.spec.name))
            if raw and datetime.fromisoformat(raw) >= slot:
                return
        nxt = timer.next_after(max(slot, self._clock.now()))
        status = {"Last": last.isoformat() if last else None, "Next": nxt.isoformat(),
                  "LastUpdated": self._clock.now().isoformat()}
        try:
            # The worker's concrete class (azure.functions.TimerRequest is its abstract base).
            request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
            await self._invoker.invoke(timer.spec, {timer.spec.trigger["name"]: request,
                                                    **self._extra_inputs(timer.spec)})
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("timer %s failed at slot %s", timer.spec.name, slot.isoformat())
        if timer.use_monitor:
            await self._record(timer.spec.name, slot, self._clock.now())

    async def _record(self, name: str, slot: datetime, ran: datetime | None) -> None:
        await self._db.write(lambda c: host_db.timer_record(c, name, slot.isoformat(), ran.isoformat() if ran else ""))
