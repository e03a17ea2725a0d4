"""`Storage`: the small document-and-blob API user code calls (`save`, `load`, `upload`, `download`)."""

from __future__ import annotations

import builtins
from typing import Any

from aos_core.ports import JSON, BlobStore, StateStore

_PAGE = 1000


class Storage:
    """Documents by key and blobs by (container, name) over any StateStore and BlobStore.

    `blob_store` defaults to `state_store` when that implements BlobStore too (both embedded stores do).
    """

    def __init__(self, state_store: StateStore, blob_store: BlobStore | None = None) -> None:
        if blob_store is None and isinstance(state_store, BlobStore):
            blob_store = state_store
        self.state = state_store
        self._blob_store = blob_store

    @property
    def blobs(self) -> BlobStore:
        if self._blob_store is None:
            raise RuntimeError(f"{type(self.state).__name__} stores no blobs; pass Storage(..., blob_store=...)")
        return self._blob_store

    # --- documents ----------------------------------------------------------------------------------

    async def save(self, key: str, value: JSON, *, if_match: str | None = None) -> str:
        """Store `value` (any JSON value) at `key` and return its new ETag."""
        return await self.state.put(key, value, if_match=if_match)

    async def load(self, key: str, default: Any = None) -> Any:
        """The value at `key`, or `default` when there is none."""
        doc = await self.state.get(key)
        return default if doc is None else doc.value

    async def delete(self, key: str) -> bool:
        """Delete `key`; False if it did not exist."""
        return await self.state.delete(key)

    async def list(self, prefix: str = "") -> dict[str, Any]:
        """Every document whose key starts with `prefix`, as key -> value in key order."""
        out: dict[str, Any] = {}
        start_after: str | None = None
        while True:
            page = await self.state.list(prefix, start_after=start_after, limit=_PAGE)
            out.update((doc.key, doc.value) for doc in page)
            if len(page) < _PAGE:
                return out
            start_after = page[-1].key

    # --- blobs --------------------------------------------------------------------------------------

    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) as blob `name` in `container`; return its ETag."""
        return await self.blobs.upload(container, name, data, overwrite=overwrite)

    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if it does not exist."""
        return await self.blobs.download(container, name)

    async def delete_blob(self, container: str, name: str) -> bool:
        """Delete the blob; False if it did not exist."""
        return await self.blobs.delete_blob(container, name)

    async def list_blobs(self, container: str, prefix: str = "") -> builtins.list[str]:
        """Names of the blobs in `container` starting with `prefix`, in name order."""
        return await self.blobs.list_blobs(container, prefix)
