from __future__ import annotations

import asyncio

import pytest

from aos_core.testing import ManualClock
from services.reliability import OperationTimeoutError, is_transient, with_timeout


async def test_result_within_the_deadline() -> None:
    async def quick() -> int:
        return 5

    assert await with_timeout(quick(), 1.0, what="quick") == 5


async def test_timeout_names_what_timed_out() -> None:
    with pytest.raises(OperationTimeoutError, match=r"blob upload timed out after 0 s") as info:
        await with_timeout(asyncio.Event().wait(), 0, what="blob upload")
    assert isinstance(info.value, TimeoutError)
    assert is_transient(info.value)


async def test_timeout_on_a_manual_clock_cancels_the_work() -> None:
    clock = ManualClock()
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.create_task(with_timeout(stuck(), 30, what="key vault read", clock=clock))
    await clock.advance(29)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(OperationTimeoutError, match="key vault read timed out after 30 s"):
        await task
    assert cancelled.is_set()


async def test_manual_clock_result_before_deadline() -> None:
    clock = ManualClock()

    async def work() -> str:
        await clock.sleep(5)
        return "done"

    task = asyncio.create_task(with_timeout(work(), 10, clock=clock))
    await clock.advance(5)
    assert await task == "done"
    assert clock.sleepers == 0


async def test_errors_pass_through() -> None:
    async def broken() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await with_timeout(broken(), 5, clock=ManualClock())
