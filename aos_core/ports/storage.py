"""Storage ports: documents with ETags (StateStore) and blobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aos_core.ports.basics import JSON


@dataclass(frozen=True, slots=True)
class Document:
    """A stored JSON document and the ETag of the version read."""

    key: str
    value: JSON
    etag: str


@runtime_checkable
class StateStore(Protocol):
    """JSON documents by key, with optimistic concurrency through ETags.

    Keys are `/`-separated paths (`context/ceo`, `registry/agents/t1`); listing is by key prefix in key order.
    """

    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        ...

    async def etag(self, key: str) -> str | None:
        """The ETag `get` would return, or None, without reading or decoding the value (a cheap "has it changed")."""
        ...

    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return the new ETag.

        `if_match`: replace only if the stored ETag equals it (ConflictError otherwise, also if missing).
        `if_none_match`: create only; ConflictError if the key exists.
        """
        ...

    async def get_many(self, keys: Sequence[str]) -> list[Document | None]:
        """The document at each key, or None, in the order of `keys`: one storage call where the store can read
        several documents at once."""
        ...

    async def create_many(self, items: Sequence[tuple[str, JSON]]) -> list[str | None]:
        """Create each `(key, value)` whose key does not exist yet, as `put(..., if_none_match=True)` would: the
        new ETag per item, or None where the key existed (nothing written there). One storage call where the
        store has a batch write (a batch of accepted events is recorded with one); never atomic as a whole."""
        ...

    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. ConflictError on a stale `if_match`."""
        ...

    async def list(self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000) -> list[Document]:
        """Documents whose key starts with `prefix`, in key order, after `start_after`, at most `limit`."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Opaque bytes by (container, name): files, reports, exported models."""

    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag. ConflictError if it exists and not `overwrite`."""
        ...

    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        ...

    async def delete_blob(self, container: str, name: str) -> bool: ...

    async def list_blobs(self, container: str, prefix: str = "") -> list[str]: ...
