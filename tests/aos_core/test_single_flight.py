"""SingleFlight: one run per key; a joiner never inherits another caller's cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aos_core.single_flight import SingleFlight


async def test_concurrent_callers_share_one_run_and_its_result() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.01)
        return 42

    assert await asyncio.gather(*(flights.run("k", work) for _ in range(10))) == [42] * 10
    assert runs == 1
    assert not flights.running("k")


async def test_a_failure_reaches_every_caller_and_the_next_call_runs_again() -> None:
    flights: SingleFlight[str, int] = SingleFlight()

    async def failing() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    results = await asyncio.gather(*(flights.run("k", failing) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert await flights.run("k", lambda: asyncio.sleep(0, result=7)) == 7


async def test_when_the_runner_is_cancelled_a_waiting_caller_runs_the_work_itself() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    started: list[str] = []

    def work(who: str) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            started.append(who)
            await asyncio.sleep(0.05)
            return who
        return run

    first = asyncio.create_task(flights.run("k", work("first")))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(flights.run("k", work("second")))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "second"  # not the first caller's CancelledError
    assert started == ["first", "second"]


async def test_a_cancelled_joiner_leaves_the_run_going() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()  # the run lasts until the joiner is gone, however slow the machine

    async def work() -> str:
        await release.wait()
        return "done"

    owner = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    joiner = asyncio.create_task(flights.run("k", lambda: asyncio.sleep(0, result="never")))
    for _ in range(3):
        await asyncio.sleep(0)
    assert flights.running("k")
    joiner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await joiner
    release.set()
    assert await owner == "done"
