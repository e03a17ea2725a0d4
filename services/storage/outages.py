"""Azure SDK errors that mean the service could not be reached or could not answer, as StorageUnavailableError.

The kernel treats StorageUnavailableError as nobody's failure: the event stays pending and is applied once storage
answers (see docs/kernel.md). The SDKs raise their own types for it, after their own retries: a connection that
failed or broke (`ServiceRequestError`, `ServiceResponseError`), a timeout, or a status that says "not now"
(408, 429, 5xx). Anything else (a missing document, a failed precondition, a bad request) is the caller's to
handle and passes through unchanged. The Azure SDK is imported only when an error needs classifying.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from aos_core.errors import StorageUnavailableError

P = ParamSpec("P")
T = TypeVar("T")
_NOT_NOW = frozenset({408, 429})


def as_outage(exc: BaseException) -> StorageUnavailableError | None:
    """The StorageUnavailableError `exc` amounts to, or None when it is not an outage."""
    from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

    if isinstance(exc, ServiceRequestError | ServiceResponseError | TimeoutError):
        reason = "the service could not be reached"
    elif isinstance(exc, HttpResponseError) and exc.status_code is not None and (
            exc.status_code >= 500 or exc.status_code in _NOT_NOW):
        reason = f"the service answered {exc.status_code}"
    else:
        return None
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return StorageUnavailableError(f"storage unavailable: {reason} ({detail})")


def outages_unavailable(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Decorate a store's async method: an outage it meets is raised as StorageUnavailableError."""

    @functools.wraps(method)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            outage = as_outage(exc)
            if outage is None:
                raise
            raise outage from exc

    return call
