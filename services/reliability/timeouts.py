"""Bounded waits: every call to something outside the process gets a deadline that names what timed out."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from aos_core.errors import AOSError
from aos_core.ports import Clock

T = TypeVar("T")


class OperationTimeoutError(AOSError, TimeoutError):
    """An operation did not finish in time. A TimeoutError, so `is_transient` retries it."""

    def __init__(self, what: str, seconds: float) -> None:
        super().__init__(f"{what} timed out after {seconds:g} s")
        self.what = what
        self.seconds = seconds


async def with_timeout(awaitable: Awaitable[T], seconds: float, what: str = "operation", *,
                       clock: Clock | None = None) -> T:
    """The result of `awaitable`, or OperationTimeoutError naming `what` after `seconds` (the work is cancelled).

    With `clock`, the deadline runs on that clock (a ManualClock in tests); otherwise on the event loop's.
    """
    if seconds < 0:
        raise ValueError(f"timeout for {what} must be >= 0, got {seconds!r}")
    if clock is None:
        try:
            async with asyncio.timeout(seconds):
                return await awaitable
        except TimeoutError:
            raise OperationTimeoutError(what, seconds) from None
    work = asyncio.ensure_future(awaitable)
    deadline = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({work, deadline}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # our caller was cancelled: take the work down with it
        work.cancel()
        raise
    finally:
        deadline.cancel()
    if work.done():
        return work.result()
    work.cancel()
    try:
        await work
    except asyncio.CancelledError:
        pass
    except Exception:  # it failed while being cancelled; the timeout is still the answer
        pass
    raise OperationTimeoutError(what, seconds)
