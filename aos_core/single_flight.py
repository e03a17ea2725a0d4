"""Single flight: concurrent callers with the same key share one run of the work.

Used wherever a second caller must not repeat work already under way (delivering an event to an agent,
activating an agent, fetching a secret, asking a model). A caller that joins gets the first caller's result or
exception. If the caller running the work is cancelled (its request went away, its task timed out), the work did
not finish: a caller waiting on it runs the work itself instead of failing with someone else's cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    """At most one run of the work per key at a time, in one event loop."""

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    def running(self, key: K) -> bool:
        """Whether a run for `key` is under way (a call now would join it)."""
        return key in self._running

    async def run(self, key: K, work: Callable[[], Awaitable[T]]) -> T:
        """`await work()`, or the outcome of the run for `key` already under way."""
        while (running := self._running.get(key)) is not None:
            try:
                return await asyncio.shield(running)
            except asyncio.CancelledError:
                if not running.cancelled():  # this caller was cancelled, not the one running the work
                    raise
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            result = await work()
        except asyncio.CancelledError:
            future.cancel()  # callers waiting on it run the work themselves
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the error also goes to this caller
            raise
        finally:
            if self._running.get(key) is future:
                del self._running[key]
        future.set_result(result)
        return result
