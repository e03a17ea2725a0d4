"""Concurrent requests for one key, sent in groups: one send at a time per key, the rest go in the next one.

While a send for a key is in flight, what arrives for that key queues up; when it returns, everything queued
goes out in one send. An idle caller waits for nothing, and under load the groups grow by themselves (a group
commit). The registry's generation writes and the Durable signals that hand events to an agent's entity both
work this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - the item type, next to K and R
R = TypeVar("R")


class Batcher(Generic[K, I, R]):
    """`await submit(key, items)` -> one result per item, from `send(key, group)` calls made one at a time per key.

    `send` returns one result per item of the group, in order; if it raises, every item of that group fails
    with that error. With `identity`, an item whose identity is already queued or in flight for the key joins
    that one instead of being sent again (a resend while the first is pending).
    """

    def __init__(self, send: Callable[[K, list[I]], Awaitable[Sequence[R]]], *,
                 identity: Callable[[I], Hashable] | None = None) -> None:
        self._send = send
        self._identity = identity
        self._queued: dict[K, list[tuple[I, asyncio.Future[R]]]] = {}
        self._senders: dict[K, asyncio.Task[None]] = {}
        self._pending: dict[tuple[K, Hashable], asyncio.Future[R]] = {}

    def pending(self, key: K) -> bool:
        """Whether a send for `key` is in flight or queued."""
        return key in self._senders

    async def submit(self, key: K, items: Sequence[I]) -> list[R]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = []
        queue = self._queued.setdefault(key, [])
        for item in items:
            ident = (key, self._identity(item)) if self._identity is not None else None
            joined = self._pending.get(ident) if ident is not None else None
            if joined is not None:
                futures.append(joined)
                continue
            future: asyncio.Future[R] = loop.create_future()
            if ident is not None:
                self._pending[ident] = future
                future.add_done_callback(lambda _, ident=ident: self._pending.pop(ident, None))
            queue.append((item, future))
            futures.append(future)
        if not queue:
            del self._queued[key]
        elif key not in self._senders:
            # The sender is a task of its own, so a caller that is cancelled does not cancel the others' send.
            self._senders[key] = loop.create_task(self._send_groups(key))
        return list(await asyncio.shield(asyncio.gather(*futures)))

    async def _send_groups(self, key: K) -> None:
        try:
            while group := self._queued.pop(key, None):
                try:
                    results = await self._send(key, [item for item, _ in group])
                except Exception as exc:  # every caller of the group gets the failure
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                            future.exception()  # retrieved here too: a cancelled caller leaves no "never retrieved"
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            del self._senders[key]
