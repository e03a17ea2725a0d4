from __future__ import annotations

import asyncio

import pytest

from aos_core.errors import AgentUnavailableError
from aos_core.testing import ManualClock
from services.reliability import BreakerRegistry, CircuitBreaker, CircuitOpenError


class Down(Exception):
    pass


async def fail() -> None:
    raise Down("dependency down")


async def ok() -> str:
    return "ok"


async def test_opens_after_threshold_and_fails_fast() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(name="sb", failure_threshold=3, timeout=60, expected_exception=Down, clock=clock)
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1
        raise Down()

    for _ in range(3):
        with pytest.raises(Down):
            await breaker.call(counted)
    assert breaker.state == "open"
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call(counted)
    assert calls == 3  # not attempted while open
    assert isinstance(info.value, AgentUnavailableError)
    assert info.value.retry_after == pytest.approx(60)
    assert breaker.snapshot()["rejected"] == 1


async def test_success_resets_consecutive_failures() -> None:
    breaker = CircuitBreaker(failure_threshold=2, expected_exception=Down, clock=ManualClock())
    with pytest.raises(Down):
        await breaker.call(fail)
    assert await breaker.call(ok) == "ok"
    with pytest.raises(Down):
        await breaker.call(fail)
    assert breaker.state == "closed"


async def test_half_open_after_timeout_then_closes_on_success() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, expected_exception=Down, clock=clock)
    with pytest.raises(Down):
        await breaker.call(fail)
    await clock.advance(29.9)
    assert breaker.state == "open"
    await clock.advance(0.1)
    assert breaker.state == "half_open"
    async with breaker:
        pass
    assert breaker.state == "closed"


async def test_half_open_failure_reopens_for_a_full_timeout() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=10, expected_exception=Down, clock=clock)
    with pytest.raises(Down):
        await breaker.call(fail)
    await clock.advance(10)
    with pytest.raises(Down):
        async with breaker:
            raise Down()
    assert breaker.state == "open"
    await clock.advance(9)
    assert breaker.state == "open"
    await clock.advance(1)
    assert breaker.state == "half_open"


async def test_half_open_admits_only_max_trial_calls() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=5, half_open_max_calls=2, expected_exception=Down,
                             clock=clock)
    with pytest.raises(Down):
        await breaker.call(fail)
    await clock.advance(5)
    gate = asyncio.Event()

    async def slow() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(breaker.call(slow))
    second = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):
        await breaker.call(ok)  # a third concurrent trial is refused
    gate.set()
    assert await asyncio.gather(first, second) == ["done", "done"]
    assert breaker.state == "closed"


async def test_unexpected_exceptions_do_not_trip_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, expected_exception=Down, clock=ManualClock())

    async def bad_request() -> None:
        raise ValueError("bad input")

    for _ in range(3):
        with pytest.raises(ValueError):
            await breaker.call(bad_request)
    assert breaker.state == "closed"


async def test_cancelled_trial_gives_its_slot_back() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=1, expected_exception=Down, clock=clock)
    with pytest.raises(Down):
        await breaker.call(fail)
    await clock.advance(1)
    task = asyncio.create_task(breaker.call(asyncio.Event().wait))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == "half_open"
    assert await breaker.call(ok) == "ok"
    assert breaker.state == "closed"


def test_sync_calls_share_the_breaker() -> None:
    breaker = CircuitBreaker(failure_threshold=1, expected_exception=Down, clock=ManualClock())

    def boom() -> None:
        raise Down()

    with pytest.raises(Down):
        breaker.call_sync(boom)
    with pytest.raises(CircuitOpenError):
        breaker.call_sync(lambda: 1)


async def test_registry_has_one_breaker_per_dependency_and_reports_states() -> None:
    clock = ManualClock()
    breakers = BreakerRegistry()
    a = breakers.get("servicebus", failure_threshold=1, expected_exception=Down, clock=clock)
    assert breakers.get("servicebus") is a
    breakers.get("blob", clock=clock)
    with pytest.raises(Down):
        await a.call(fail)
    assert BreakerRegistry().states() == {}  # another kernel's registry knows none of them
    states = breakers.states()
    assert set(states) == {"servicebus", "blob"}
    assert states["servicebus"]["state"] == "open"
    assert states["servicebus"]["last_error"] == "Down"
    assert states["blob"]["state"] == "closed"


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(half_open_max_calls=0)
