"""A thread that notices when the kernel's event loop stops turning, and names the agent that stopped it.

A handler that blocks (`time.sleep`, a sync HTTP call, a long CPU loop) holds the one loop every agent and
every request of the worker shares. Python cannot preempt it; what the watchdog can do is see it: it posts a
heartbeat to the loop every `threshold / 4` seconds, and when one is not answered within `threshold` it reads
the loop thread's stack for the agent and event being handled, and reports the stall once, with its length
when the loop turns again.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType


@dataclass(frozen=True)
class Stall:
    """The loop did not turn for `seconds` (so far, when `ongoing`) while `agent_id` handled `event_id`."""

    seconds: float
    agent_id: str | None
    event_id: str | None
    ongoing: bool


class LoopWatchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float, report: Callable[[Stall], None]) -> None:
        self.loop = loop
        self._threshold = threshold
        self._report = report  # called on the watchdog thread: keep it thread-safe (log, then post to the loop)
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._thread = threading.Thread(target=self._watch, name="aos-watchdog", daemon=True)

    def start(self) -> None:
        self.loop.call_soon_threadsafe(self._remember_thread)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _remember_thread(self) -> None:
        self._loop_thread = threading.get_ident()

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()

    def _watch(self) -> None:
        interval = self._threshold / 4
        stalled: Stall | None = None
        since = 0.0  # the last heartbeat before the current stall
        while not self._stop.wait(interval):
            if self.loop.is_closed():
                return
            try:
                self.loop.call_soon_threadsafe(self._heartbeat)
            except RuntimeError:  # the loop closed under us
                return
            beat = self._beat
            late = time.monotonic() - beat
            if stalled is None and late >= self._threshold + interval:
                since = beat
                stalled = Stall(late, *self._culprit(), ongoing=True)
                self._report(stalled)
            elif stalled is not None and beat > since:  # the loop turned again
                self._report(Stall(beat - since, stalled.agent_id, stalled.event_id, ongoing=False))
                stalled = None

    def _culprit(self) -> tuple[str | None, str | None]:
        frame = sys._current_frames().get(self._loop_thread or -1)
        return _agent_and_event(frame)


def _agent_and_event(frame: FrameType | None) -> tuple[str | None, str | None]:
    # The innermost frame that runs a method of an agent (it has an agent_id) with the event in hand.
    while frame is not None:
        owner = frame.f_locals.get("self")
        agent_id = getattr(owner, "agent_id", None)
        if isinstance(agent_id, str):
            event = frame.f_locals.get("event")
            event_id = getattr(event, "id", None)
            return agent_id, event_id if isinstance(event_id, str) else None
        frame = frame.f_back
    return None, None
