"""Generation documents: how workers notice that shared things changed without reading all of them.

A generation document (`{"generation": n, "changes": [[n, item], ...]}`) counts changes to a set of shared
documents (agent registrations, knowledge documents) and names the latest ones. A worker keeps the ETag and
number it last saw; before using its cache it reads this one document, and when the ETag moved it reloads only
the items changed since, or everything when it is further behind than the changes kept.
"""

from __future__ import annotations

from aos_core.etag import update_document
from aos_core.ports import JSON, StateStore

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
