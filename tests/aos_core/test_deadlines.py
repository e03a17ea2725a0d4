"""Handler deadlines behave as asyncio.timeout does, with one timer for all running handlers."""

from __future__ import annotations

import asyncio
import time

import pytest

from aos_core.deadlines import Deadlines


async def test_a_block_that_overruns_is_cancelled_and_raises_timeout_error() -> None:
    deadlines = Deadlines()
    cancelled = False
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with deadlines.bound(0.05):
            try:
                await asyncio.sleep(5)
            except asyncio.CancelledError:
                cancelled = True
                raise
    assert cancelled
    assert time.monotonic() - started < 1


async def test_blocks_that_finish_in_time_leave_nothing_running_and_the_task_uncancelled() -> None:
    deadlines = Deadlines()
    for _ in range(100):
        async with deadlines.bound(0.05):
            await asyncio.sleep(0)
    await asyncio.sleep(0.1)  # past every deadline: the timer fires and finds nothing to cancel
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert not deadlines._running


async def test_each_of_many_concurrent_blocks_is_held_to_its_own_deadline() -> None:
    deadlines = Deadlines()

    async def run(allowance: float, takes: float) -> str:
        try:
            async with deadlines.bound(allowance):
                await asyncio.sleep(takes)
            return "done"
        except TimeoutError:
            return "timed out"

    # A long allowance armed first, then a shorter one: the shorter must not wait for the longer's timer.
    started = time.monotonic()
    outcomes = await asyncio.gather(run(5, 0.3), run(0.05, 5), run(0.2, 0.01), run(0.1, 5))
    assert outcomes == ["done", "timed out", "done", "timed out"]
    assert time.monotonic() - started < 1


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()

    async def handler() -> None:
        async with deadlines.bound(5):
            await asyncio.sleep(5)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not deadlines._running
