"""The real clock and id factory. Tests use `aos_core.testing` instead."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

from aos_core.ports import Clock


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class UuidIds:
    def new_id(self) -> str:
        return str(uuid.uuid4())


async def sleep_or_wake(clock: Clock, seconds: float, wake: asyncio.Event) -> None:
    """Sleep `seconds` on `clock`, or less if `wake` is set (new work arrived); cleans up when cancelled."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    woke = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait({sleeper, woke}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        woke.cancel()
