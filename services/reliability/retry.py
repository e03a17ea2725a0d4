"""Retry with exponential backoff and jitter (tenacity), for transient errors only.

`is_transient` is the one definition of "worth retrying" shared by every adapter: network and timeout
errors, and the azure-core / Service Bus / httpx errors that mean the service was briefly unavailable. It
recognises SDK exceptions through `sys.modules`: if an SDK was never imported, none of its exceptions can
exist, so nothing here imports Azure (or httpx) and `import function_app` stays cheap.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from aos_core.ports import Clock
from services.reliability.breaker import CircuitOpenError

T = TypeVar("T")

# 408 Request Timeout, 429 Too Many Requests and server errors are worth another try; other 4xx are not.
TRANSIENT_STATUS = frozenset({408, 429})


def _transient_status(status: Any) -> bool:
    return isinstance(status, int) and (status in TRANSIENT_STATUS or 500 <= status <= 599)


def is_transient(exc: BaseException) -> bool:
    """True when `exc` says "try again later", False when retrying cannot help (bad input, auth, not found)."""
    if isinstance(exc, CircuitOpenError):
        return False  # the breaker already decided; retrying would hammer it
    if isinstance(exc, ConnectionError | TimeoutError | asyncio.TimeoutError):
        return True
    azure = sys.modules.get("azure.core.exceptions")
    if azure is not None:
        if isinstance(exc, azure.ServiceRequestError | azure.ServiceResponseError):
            return True
        if isinstance(exc, azure.HttpResponseError) and _transient_status(getattr(exc, "status_code", None)):
            return True
    servicebus = sys.modules.get("azure.servicebus.exceptions")
    if servicebus is not None and isinstance(exc, servicebus.ServiceBusError):
        # Service Bus marks its own errors; credentials that fail stay failed, whatever the flag says.
        auth = (servicebus.ServiceBusAuthenticationError, servicebus.ServiceBusAuthorizationError)
        return bool(getattr(exc, "_retryable", False)) and not isinstance(exc, auth)
    httpx = sys.modules.get("httpx")
    if httpx is not None:
        if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
            return True
        if isinstance(exc, httpx.HTTPStatusError) and _transient_status(exc.response.status_code):
            return True
    return False


def _policy(attempts: int, initial: float, maximum: float,
            retry_if: Callable[[BaseException], bool]) -> dict[str, Any]:
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts!r}")
    if initial < 0 or maximum < 0:
        raise ValueError("initial and maximum backoff must be >= 0")

    # Waits initial, 2*initial, 4*initial ... plus up to `initial` of random jitter (so that many workers
    # retrying one dependency do not come back in lockstep), capped at maximum. Written out rather than
    # tenacity's wait_exponential_jitter, whose arguments changed between the tenacity versions we allow.
    def wait(state: RetryCallState) -> float:
        return min(maximum, initial * 2 ** (state.attempt_number - 1) + random.uniform(0, initial))

    return {
        "stop": stop_after_attempt(attempts),
        "wait": wait,
        "retry": retry_if_exception(retry_if),
        "reraise": True,  # the caller sees the last real error, not tenacity's RetryError
    }


async def retry_async(
    fn: Callable[..., Awaitable[T]],
    *args: Any,
    attempts: int = 4,
    initial: float = 0.2,
    maximum: float = 5.0,
    retry_if: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Clock | None = None,
    **kwargs: Any,
) -> T:
    """`await fn(*args, **kwargs)`, retried up to `attempts` times in all while `retry_if(exc)` is true.

    Backoff is exponential with jitter; `sleep` (or `clock.sleep`) replaces asyncio.sleep, so tests wait
    on a ManualClock or record the delays instead of sleeping. The last error is re-raised as is.
    """
    waiter = sleep or (clock.sleep if clock is not None else asyncio.sleep)
    retrying = AsyncRetrying(sleep=waiter, **_policy(attempts, initial, maximum, retry_if))
    async for attempt in retrying:
        with attempt:
            return await fn(*args, **kwargs)
    raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover


def retry_sync(
    fn: Callable[..., T],
    *args: Any,
    attempts: int = 4,
    initial: float = 0.2,
    maximum: float = 5.0,
    retry_if: Callable[[BaseException], bool] = is_transient,
    sleep: Callable[[float], None] | None = None,
    **kwargs: Any,
) -> T:
    """The synchronous twin of `retry_async`, for SDK clients without an async API."""
    import time

    retrying = Retrying(sleep=sleep or time.sleep, **_policy(attempts, initial, maximum, retry_if))
    return retrying(fn, *args, **kwargs)
