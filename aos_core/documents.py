"""Read-modify-write of one StateStore document under its ETag: the way shared counters and indexes change.

Several workers (Functions instances) may change one document at once; each reads it, computes the new value
and writes it only if nobody wrote in between (`if_match`, or create-only when it was missing), else reads
again. So no update is lost, whichever worker makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aos_core.errors import ConflictError
from aos_core.ports import JSON, StateStore

T = TypeVar("T")


async def update_document(store: StateStore, key: str, change: Callable[[JSON | None], tuple[JSON, T]], *,
                          attempts: int = 50) -> T:
    """Apply `change(current value or None) -> (new value, answer)` atomically and return its answer.

    `change` may run more than once (once per lost race), so it must not have side effects. ConflictError
    after `attempts` lost races in a row.
    """
    for _ in range(attempts):
        doc = await store.get(key)
        value, answer = change(doc.value if doc is not None else None)
        try:
            if doc is None:
                await store.put(key, value, if_none_match=True)
            else:
                await store.put(key, value, if_match=doc.etag)
            return answer
        except ConflictError:
            continue
    raise ConflictError(key, f"gave up after {attempts} lost races")


# --- change logs: "what changed since I last looked", for workers that cache shared documents ----------------

_CHANGES_KEPT = 256  # a worker further behind than this rebuilds its cache from the documents themselves


async def record_change(store: StateStore, key: str, item: str) -> int:
    """Bump the generation document at `key` (`{"generation": n, "changes": [[n, item], ...]}`) naming `item`
    as changed; the new generation number. A worker's cache compares the document's ETag before each use."""
    def bump(value: JSON | None) -> tuple[JSON, int]:
        current = value or {"generation": 0, "changes": []}
        number = int(current["generation"]) + 1
        return {"generation": number, "changes": [*current["changes"], [number, item]][-_CHANGES_KEPT:]}, number

    return await update_document(store, key, bump)


def changed_since(value: JSON, seen: int) -> list[str] | None:
    """The items changed after generation `seen`, oldest first, each once; None when some are no longer kept."""
    changes = [(int(n), str(item)) for n, item in value["changes"] if int(n) > seen]
    if changes and changes[0][0] > seen + 1:
        return None
    if not changes and int(value["generation"]) > seen:
        return None
    return list(dict.fromkeys(item for _, item in changes))
