"""A test environment for code that waits on time: a clock that jumps ahead instead of sleeping."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta


class ManualClock:
    """A Clock whose time moves only when a test calls `advance` (or `advance_to`).

    Tasks blocked in `sleep` wake in deadline order as time passes them, and get a chance to run before
    `advance` returns, so `await clock.advance(60)` is how a test lets a minute of schedules, backoff and
    idle eviction happen in no real time.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._offset = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return self._offset

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._offset + seconds, next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking every sleeper whose deadline is passed, in order."""
        target = self._offset + seconds
        await _settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._offset = max(self._offset, deadline)
            if not future.done():
                future.set_result(None)
            await _settle()
        self._offset = target
        await _settle()

    async def advance_to(self, when: datetime) -> None:
        await self.advance((when - self.now()).total_seconds())

    @property
    def sleepers(self) -> int:
        return sum(1 for *_, f in self._sleepers if not f.done())


async def _settle(rounds: int = 20) -> None:
    # Let woken tasks run until they block again (on the clock or elsewhere).
    for _ in range(rounds):
        await asyncio.sleep(0)


class SequentialIds:
    """Predictable ids (`prefix-1`, `prefix-2`, ...) for tests that assert on ids."""

    def __init__(self, prefix: str = "id") -> None:
        self._prefix = prefix
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"{self._prefix}-{next(self._counter)}"
