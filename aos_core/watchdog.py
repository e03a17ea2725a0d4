"""A thread that notices when the kernel's event loop stops turning, and names the agent that stopped it.

A handler that blocks (`time.sleep`, a sync HTTP call, a long CPU loop) holds the one loop every agent and
every request of the worker shares. Python cannot preempt it; what the watchdog can do is see it: it posts a
heartbeat to the loop every `threshold / 4` seconds, and when one is not answered within `threshold` it reads
the loop thread's stack for the agent and event being handled, and reports the stall once, with its length
when the loop turns again.

A loop can also stall because the machine gives it no CPU (many processes on few cores). Then the loop thread
is runnable but barely running, and whatever agent happens to be on its stack is not to blame. On Linux the
watchdog tells the two apart by the thread's CPU time over the stall and its scheduler state: a handler that
computes uses the CPU it gets, one that sleeps or waits on I/O is not runnable; a thread that is runnable yet
got less than half the stall's time was starved, and the stall is reported without an agent.
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
    starved: bool = False  # the loop thread was runnable but got little CPU: the machine was busy, no agent


class LoopWatchdog:
    def __init__(self, loop: asyncio.AbstractEventLoop, threshold: float, report: Callable[[Stall], None]) -> None:
        self.loop = loop
        self._threshold = threshold
        self._report = report  # called on the watchdog thread: keep it thread-safe (log, then post to the loop)
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._loop_thread: int | None = None
        self._loop_native_id: int | None = None
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
        self._loop_native_id = threading.get_native_id()

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()

    def _watch(self) -> None:
        interval = self._threshold / 4
        stalled: Stall | None = None
        since = 0.0  # the last heartbeat before the current stall
        turning = (time.monotonic(), self._cpu_seconds())  # (when, the loop thread's CPU time) last seen turning
        while not self._stop.wait(interval):
            if self.loop.is_closed():
                return
            try:
                self.loop.call_soon_threadsafe(self._heartbeat)
            except RuntimeError:  # the loop closed under us
                return
            beat = self._beat
            now = time.monotonic()
            late = now - beat
            if stalled is None and late >= self._threshold + interval:
                since = beat
                starved = self._starved(turning, now)
                agent, event = (None, None) if starved else self._culprit()
                stalled = Stall(late, agent, event, ongoing=True, starved=starved)
                self._report(stalled)
            elif stalled is not None and beat > since:  # the loop turned again
                self._report(Stall(beat - since, stalled.agent_id, stalled.event_id, ongoing=False,
                                   starved=stalled.starved))
                stalled = None
            if late < interval:
                turning = (now, self._cpu_seconds())

    def _cpu_seconds(self) -> float | None:
        try:
            return time.clock_gettime(time.pthread_getcpuclockid(self._loop_thread))  # type: ignore[arg-type]
        except (AttributeError, OSError, TypeError, OverflowError):  # not Linux, or the thread is not known yet
            return None

    def _starved(self, turning: tuple[float, float | None], now: float) -> bool:
        """Whether the loop thread is runnable and got less than half the time since it last turned."""
        since, cpu_then = turning
        cpu_now = self._cpu_seconds()
        state = _scheduler_state(self._loop_native_id)
        if cpu_then is None or cpu_now is None or state is None:
            return False  # cannot tell: blame what is on the stack, as everywhere else
        return state == "R" and (cpu_now - cpu_then) < 0.5 * (now - since)

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


def _scheduler_state(native_id: int | None) -> str | None:
    # R runnable, S sleeping, D waiting on I/O ... (proc(5)); None where there is no /proc.
    if native_id is None:
        return None
    try:
        with open(f"/proc/self/task/{native_id}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None
