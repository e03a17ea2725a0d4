"""The in-process StateStore and BlobStore: same semantics as the SQLite one, nothing survives the process."""

from __future__ import annotations

import builtins
from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import JSON, Document
from services.storage.keys import (
    EtagFactory,
    blob_bytes,
    check_blob_name,
    check_container,
    check_key,
    check_limit,
    check_preconditions,
    check_prefix,
    decode_value,
    encode_value,
    prefix_end,
)


class InMemoryStateStore:
    """JSON documents with ETags and blobs in dicts; implements StateStore and BlobStore.

    Values are kept as JSON text, so a caller mutating what it passed in or got back never changes what is
    stored. No method awaits between its precondition check and its write, so each one is atomic on the loop.
    """

    def __init__(self) -> None:
        self._docs: dict[str, tuple[str, str]] = {}  # key -> (JSON text, etag)
        self._keys: builtins.list[str] = []  # for prefix listing: sorted, but for new keys appended since
        self._appended = False  # sorted again when next read: an insort per new key is O(n) and adds up
        self._blobs: dict[str, dict[str, tuple[bytes, str]]] = {}  # container -> name -> (data, etag)
        self._etags = EtagFactory()

    # --- documents ----------------------------------------------------------------------------------

    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        check_key(key)
        found = self._docs.get(key)
        return None if found is None else Document(key, decode_value(found[0]), found[1])

    async def etag(self, key: str) -> str | None:
        """The ETag of the document at `key`, or None."""
        check_key(key)
        found = self._docs.get(key)
        return None if found is None else found[1]

    async def get_many(self, keys: Sequence[str]) -> builtins.list[Document | None]:
        """The document at each key, or None."""
        return [await self.get(key) for key in keys]

    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return its new ETag; ConflictError when `if_match`/`if_none_match` does not hold."""
        check_key(key)
        check_preconditions(if_match, if_none_match)
        return self._write(key, encode_value(value), if_match=if_match, if_none_match=if_none_match)

    async def create_many(self, items: Sequence[tuple[str, JSON]]) -> builtins.list[str | None]:
        """Create each document whose key does not exist yet: its ETag, or None where the key existed."""
        texts = [(check_key(key), encode_value(value)) for key, value in items]  # all checked before any write
        return [None if key in self._docs else self._write(key, text, if_match=None, if_none_match=True)
                for key, text in texts]

    def _write(self, key: str, text: str, *, if_match: str | None, if_none_match: bool) -> str:
        current = self._docs.get(key)
        if if_match is not None and (current is None or current[1] != if_match):
            raise ConflictError(key, "ETag does not match (stale or missing)")
        if if_none_match and current is not None:
            raise ConflictError(key, "already exists")
        etag = self._etags.new()
        self._docs[key] = (text, etag)
        if current is None:
            self._keys.append(key)
            self._appended = True
        return etag

    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. With `if_match`, ConflictError if stale or missing."""
        check_key(key)
        check_preconditions(if_match, False)
        current = self._docs.get(key)
        if if_match is not None and (current is None or current[1] != if_match):
            raise ConflictError(key, "ETag does not match (stale or missing)")
        if current is None:
            return False
        del self._docs[key]
        keys = self._sorted_keys()
        del keys[bisect_left(keys, key)]
        return True

    def _sorted_keys(self) -> builtins.list[str]:
        if self._appended:  # a sorted run and a short tail: Timsort merges them in about linear time
            self._keys.sort()
            self._appended = False
        return self._keys

    async def list(self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000) -> list[Document]:
        """Documents whose key starts with `prefix`, in key order, after `start_after`, at most `limit`."""
        check_prefix(prefix)
        if start_after is not None:
            check_prefix(start_after, "start_after")
        check_limit(limit)
        keys = self._sorted_keys()
        if start_after is not None and start_after >= prefix:
            lo = bisect_right(keys, start_after)
        else:
            lo = bisect_left(keys, prefix)
        end = prefix_end(prefix)
        hi = len(keys) if end is None else bisect_left(keys, end, lo)
        out: builtins.list[Document] = []
        for key in keys[lo : min(hi, lo + limit)]:
            text, etag = self._docs[key]
            out.append(Document(key, decode_value(text), etag))
        return out

    async def count(self, prefix: str = "") -> int:
        """How many documents have a key starting with `prefix`."""
        check_prefix(prefix)
        end = prefix_end(prefix)
        keys = self._sorted_keys()
        lo = bisect_left(keys, prefix)
        hi = len(keys) if end is None else bisect_left(keys, end, lo)
        return hi - lo

    # --- blobs --------------------------------------------------------------------------------------

    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag; ConflictError if it exists and not `overwrite`."""
        check_container(container)
        check_blob_name(name)
        payload = blob_bytes(data)
        blobs = self._blobs.setdefault(container, {})
        if not overwrite and name in blobs:
            raise ConflictError(f"{container}/{name}", "blob already exists")
        etag = self._etags.new()
        blobs[name] = (payload, etag)
        return etag

    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        check_container(container)
        check_blob_name(name)
        found = self._blobs.get(container, {}).get(name)
        if found is None:
            raise NotFoundError(f"blob {container}/{name} not found")
        return found[0]

    async def delete_blob(self, container: str, name: str) -> bool:
        """Delete the blob; False if it did not exist."""
        check_container(container)
        check_blob_name(name)
        return self._blobs.get(container, {}).pop(name, None) is not None

    async def list_blobs(self, container: str, prefix: str = "") -> builtins.list[str]:
        """Names of the blobs in `container` starting with `prefix`, in name order ([] for an unknown container)."""
        check_container(container)
        check_prefix(prefix)
        return sorted(name for name in self._blobs.get(container, {}) if name.startswith(prefix))

    async def close(self) -> None:
        """Nothing to release; the data stays readable (the store is the process's memory)."""
