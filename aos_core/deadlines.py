"""Handler deadlines: cancel a handler that runs past its allowance, with one loop timer for all of them.

`asyncio.timeout` arms a timer per call (a handle, a heap push, and heap clean-up once cancelled handles pile
up), which an event that takes microseconds pays every time. The kernel's handlers all get the same allowance
(`dispatch.handler_timeout`), so the running ones are kept in a dict and a single timer, set for the earliest
deadline, fires at most once per allowance while handlers run. The semantics are `asyncio.timeout`'s: the
overrunning task is cancelled and its `async with` block raises TimeoutError (a cancellation from anywhere else
stays a cancellation).
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Deadlines:
    """Running handlers' deadlines in one event loop; `async with deadlines.bound(seconds):` limits a block."""

    def __init__(self) -> None:
        self._running: dict[Bound, float] = {}  # bound -> deadline (loop time)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def bound(self, seconds: float) -> Bound:
        return Bound(self, seconds)

    def _start(self, bound: Bound, loop: asyncio.AbstractEventLoop) -> None:
        deadline = loop.time() + bound.seconds
        self._running[bound] = deadline
        if self._timer is None or deadline < self._timer_at:  # a shorter allowance than the one armed
            self._arm(loop, deadline)

    def _arm(self, loop: asyncio.AbstractEventLoop, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._expire, loop), at

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        now, earliest = loop.time(), None
        for bound, deadline in list(self._running.items()):
            if deadline <= now:
                del self._running[bound]
                bound.expire()
            elif earliest is None or deadline < earliest:
                earliest = deadline
        if earliest is not None:
            self._arm(loop, earliest)


class Bound:
    """One limited block: `async with` it inside the task to be cancelled when it overruns."""

    __slots__ = ("_cancelling", "_deadlines", "_expired", "_task", "seconds")

    def __init__(self, deadlines: Deadlines, seconds: float) -> None:
        self._deadlines = deadlines
        self.seconds = seconds
        self._expired = False

    def expire(self) -> None:
        self._expired = True
        self._task.cancel()

    async def __aenter__(self) -> Bound:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a deadline bounds a block inside a task")
        self._task, self._cancelling = task, task.cancelling()
        self._deadlines._start(self, task.get_loop())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self._deadlines._running.pop(self, None)
        # As asyncio.timeout: only the cancellation this deadline made, and no other since, becomes TimeoutError.
        if self._expired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
