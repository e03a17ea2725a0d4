"""Filtered, paged reads of the documents under a key prefix (what registries of records list with)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aos_core.ports import StateStore

T = TypeVar("T")
_PAGE = 500


async def scan(store: StateStore, prefix: str, parse: Callable[[Any], T], keep: Callable[[T], bool] | None = None,
               *, after: str | None = None, limit: int = 100) -> list[T]:
    """Parsed documents under `prefix` in key order after key `prefix + after`, those `keep` accepts, at most
    `limit` (1-1000); reads the store a page at a time until enough are found."""
    if not 1 <= limit <= 1000:
        raise ValueError("limit must be from 1 to 1000")
    out: list[T] = []
    cursor = prefix + after if after else None
    while len(out) < limit:
        page = await store.list(prefix, start_after=cursor, limit=_PAGE)
        for doc in page:
            item = parse(doc.value)
            if keep is None or keep(item):
                out.append(item)
                if len(out) == limit:
                    break
        if len(page) < _PAGE:
            break
        cursor = page[-1].key
    return out
