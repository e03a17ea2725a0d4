"""Optimistic concurrency, written once: a read-modify-write that lost an ETag race reads again and retries.

Every document that several writers share (a workflow, a risk, an agent's registry record, a context's grants,
an idempotency record, a model pointer) is changed by reading it with its ETag, changing a copy and writing it
back with `if_match` (or `if_none_match` when it did not exist). Losing that race raises ConflictError; the
change is then simply made again on what the winner wrote. After `attempts` lost races in a row the caller gets
a ConflictError naming the document (an HTTP 409), rather than a spin.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aos_core.errors import ConflictError
from aos_core.ports import JSON, StateStore

T = TypeVar("T")
# Lost races in a row before giving up: a lost race means another writer made progress, so this only bounds
# how long one caller waits on a hot document (the registry generation, an alert's state) under many workers.
CONFLICT_ATTEMPTS = 50


async def retry_on_conflict(attempt: Callable[[], Awaitable[T]], *, key: str, what: str = "update",
                            attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `attempt` (it reads, changes and writes with an ETag precondition) until it raises no ConflictError."""
    for _ in range(attempts):
        try:
            return await attempt()
        except ConflictError:
            continue
    raise ConflictError(key, f"{what} lost {attempts} write races in a row; try again")


async def update_document(store: StateStore, key: str, change: Callable[[JSON | None], tuple[JSON | None, T]], *,
                          what: str = "update", attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Apply `change` to the document at `key` atomically and return its answer.

    `change(current)` gets a private copy of the current value (None when there is none) and returns
    `(new value, answer)`; a new value of None writes nothing. It may raise to refuse. It runs again after each
    lost race, so it must have no side effects.
    """

    async def attempt() -> T:
        doc = await store.get(key)
        new, answer = change(None if doc is None else copy.deepcopy(doc.value))
        if new is not None:
            if doc is None:
                await store.put(key, new, if_none_match=True)
            else:
                await store.put(key, new, if_match=doc.etag)
        return answer

    return await retry_on_conflict(attempt, key=key, what=what, attempts=attempts)
