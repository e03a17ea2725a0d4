"""Events accepted and results written on this instance, for callers waiting here: `?wait` without polling storage.

A target's result document is written by the agent's mailbox on whichever instance runs it (the one holding the
agent entity's lease). When that is this instance, `EventRecords` posts the result here as well, right after the
write, and a caller waiting for the event wakes at once; with the record accepted here too, the answer needs no
read at all. A caller whose event is handled elsewhere gets nothing posted here and reads storage at a slow
back-off instead, so only waiting on another instance's work costs requests.

Bounded: the last `capacity` events are kept, so a caller that starts waiting after the result was written still
finds it. What is posted is only what was durably written, so the board never answers anything storage would not.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aos_core.clock import sleep_or_wake
from aos_core.ports import JSON, Clock

CAPACITY = 4096


@dataclass
class Posted:
    """What this instance knows of one event: its record (when accepted here) and the results written here."""

    record: dict[str, Any] | None = None
    results: dict[str, dict[str, JSON]] = field(default_factory=dict)
    wakers: list[asyncio.Event] = field(default_factory=list)


class ResultBoard:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._events: OrderedDict[str, Posted] = OrderedDict()
        self._capacity = capacity

    def accepted(self, record: dict[str, Any]) -> None:
        """The record of an event this instance accepted, without the event's own data (kept as given)."""
        self._entry(str(record["id"])).record = record

    def post(self, event_id: str, result: dict[str, JSON]) -> None:
        """A target's result, once its document is written; wakes the callers waiting for the event."""
        entry = self._entry(event_id)
        entry.results[str(result["agent_id"])] = result
        wakers, entry.wakers = entry.wakers, []
        for waker in wakers:
            waker.set()

    def get(self, event_id: str) -> Posted | None:
        return self._events.get(event_id)

    async def changed(self, event_id: str, seconds: float, clock: Clock) -> bool:
        """Wait until a result for `event_id` is posted (True) or `seconds` of the clock pass (False)."""
        woke = asyncio.Event()
        entry = self._entry(event_id)
        entry.wakers.append(woke)
        try:
            await sleep_or_wake(clock, seconds, woke)
        finally:
            if not woke.is_set():
                entry.wakers.remove(woke)
        return woke.is_set()

    def _entry(self, event_id: str) -> Posted:
        entry = self._events.get(event_id)
        if entry is None:
            entry = self._events[event_id] = Posted()
            while len(self._events) > self._capacity:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(event_id)
        return entry
