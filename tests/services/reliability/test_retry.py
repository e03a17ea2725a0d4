from __future__ import annotations

import asyncio

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.servicebus.exceptions import ServiceBusAuthenticationError, ServiceBusServerBusyError

from aos_core.testing import ManualClock
from services.reliability import CircuitOpenError, OperationTimeoutError, is_transient, retry_async, retry_sync


class Flaky:
    def __init__(self, failures: int, exc: BaseException) -> None:
        self.failures = failures
        self.exc = exc
        self.calls = 0

    async def __call__(self, value: str) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc
        return value


async def test_retries_transient_errors_with_growing_jittered_backoff() -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    flaky = Flaky(3, ConnectionError("reset"))
    assert await retry_async(flaky, "v", attempts=4, initial=0.5, maximum=10, sleep=sleep) == "v"
    assert flaky.calls == 4
    # exponential base 0.5, 1, 2, each with up to 0.5 jitter on top
    for delay, base in zip(delays, [0.5, 1.0, 2.0], strict=True):
        assert base <= delay <= base + 0.5


async def test_backoff_is_capped_at_maximum() -> None:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with pytest.raises(TimeoutError):
        await retry_async(Flaky(99, TimeoutError()), "v", attempts=8, initial=1, maximum=3, sleep=sleep)
    assert len(delays) == 7
    assert max(delays) <= 3


async def test_gives_up_after_attempts_and_reraises_the_last_error() -> None:
    flaky = Flaky(10, ConnectionError("still down"))

    async def sleep(_: float) -> None:
        return None

    with pytest.raises(ConnectionError, match="still down"):
        await retry_async(flaky, "v", attempts=3, sleep=sleep)
    assert flaky.calls == 3


async def test_permanent_errors_are_not_retried() -> None:
    flaky = Flaky(1, ValueError("bad input"))
    with pytest.raises(ValueError):
        await retry_async(flaky, "v", sleep=lambda _: asyncio.sleep(0))
    assert flaky.calls == 1


async def test_waits_on_the_clock() -> None:
    clock = ManualClock()
    flaky = Flaky(1, ConnectionError())
    task = asyncio.create_task(retry_async(flaky, "v", initial=2, maximum=2, clock=clock))
    await clock.advance(1.9)
    assert not task.done() and flaky.calls == 1
    await clock.advance(2.1)  # 2 s plus at most 2 s of jitter
    assert await task == "v"


def test_sync_retry() -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 2:
            raise TimeoutError()
        return 7

    assert retry_sync(flaky, sleep=lambda _: None) == 7


def _http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize(("exc", "transient"), [
    (ConnectionResetError(), True),
    (TimeoutError(), True),
    (OperationTimeoutError("blob upload", 5), True),
    (ServiceRequestError("connect failed"), True),
    (ServiceResponseError("connection dropped"), True),
    (_http_error(429), True),
    (_http_error(408), True),
    (_http_error(503), True),
    (_http_error(400), False),
    (_http_error(409), False),
    (ResourceNotFoundError("missing"), False),
    (ServiceBusServerBusyError(message="busy"), True),
    (ServiceBusAuthenticationError(message="bad key"), False),
    (httpx.ConnectError("refused"), True),
    (httpx.ReadTimeout("slow"), True),
    (CircuitOpenError("sb", 5), False),
    (ValueError("bad"), False),
    (KeyError("x"), False),
])
def test_is_transient(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_httpx_status_errors() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/mcp")
    for status, transient in [(502, True), (429, True), (404, False)]:
        response = httpx.Response(status, request=request)
        error = httpx.HTTPStatusError("x", request=request, response=response)
        assert is_transient(error) is transient
