"""Generation documents: how workers notice that shared things changed without reading all of them.

A generation document (`{"generation": n, "changes": [[n, item], ...]}`) counts changes to a set of shared
documents (agent registrations, knowledge documents) and names the latest ones. A worker keeps the ETag and
number it last saw; before using its cache it reads this one document, and when the ETag moved it reloads only
the items changed since, or everything when it is further behind than the changes kept.

Every change bumps the one document, so it is the hottest document there is: a worker that registers many
agents at once would lose its own ETag races to itself. `GenerationLog` therefore commits in groups: changes
recorded while a write is under way wait for it and then go out together in the next write (one ETag race per
group, not per change), and each still gets its own number.
"""

from __future__ import annotations

from functools import partial

from aos_core.batches import Batcher
from aos_core.etag import update_document
from aos_core.ports import JSON, StateStore

_CHANGES_KEPT = 256  # a worker further behind than this rebuilds its cache from the documents themselves


def _bumped(value: JSON | None, items: list[str]) -> tuple[JSON, int]:
    # The document after `items` changed, one number each, and the number of the first of them.
    current = value or {"generation": 0, "changes": []}
    first = int(current["generation"]) + 1
    added = [[first + i, item] for i, item in enumerate(items)]
    changes = [*current["changes"], *added][-_CHANGES_KEPT:]
    return {"generation": first + len(items) - 1, "changes": changes}, first


class GenerationLog:
    """The generation document at `key`, written in groups by this worker (one instance per store and key)."""

    def __init__(self, store: StateStore, key: str) -> None:
        self._store = store
        self._key = key
        self._groups: Batcher[None, str, int] = Batcher(self._write_group)

    async def record(self, item: str) -> int:
        """Name `item` as changed; its generation number, once the document that says so is written."""
        return (await self._groups.submit(None, [item]))[0]

    async def _write_group(self, _: None, items: list[str]) -> list[int]:
        first = await update_document(self._store, self._key, partial(_bumped, items=items),
                                      what=f"{self._key} update")
        return [first + offset for offset in range(len(items))]


def changed_since(value: JSON, seen: int) -> list[str] | None:
    """The items changed after generation `seen`, oldest first, each once; None when some are no longer kept."""
    changes = [(int(n), str(item)) for n, item in value["changes"] if int(n) > seen]
    if changes and changes[0][0] > seen + 1:
        return None
    if not changes and int(value["generation"]) > seen:
        return None
    return list(dict.fromkeys(item for _, item in changes))
