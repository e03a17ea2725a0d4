"""Validation, encoding and ETags shared by every StateStore/BlobStore implementation.

Both embedded stores (and later the Azure ones) call these, so a key, value or container name that one
implementation rejects is rejected by all of them, with the same error. `RequestPerDocument` gives a store with
no batch read or write its `get_many` and `create_many`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aos_core import strict_json
from aos_core.errors import ConflictError
from aos_core.ports import JSON, Document

MAX_KEY_LENGTH = 1024
MAX_BLOB_NAME_LENGTH = 1024

# Azure Blob Storage container rules: 3-63 chars of lowercase letters, digits and hyphens, starting and
# ending with a letter or digit, no two hyphens in a row. Enforced locally so code moves to Azure unchanged.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")

_MAX_CHAR = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        # SQLite (and every HTTP API) stores UTF-8: a lone surrogate cannot be stored, so refuse it everywhere.
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode text (lone surrogate): {value!r}") from None
    return value


def _check_name(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty str, got {value!r}")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {limit}")
    return _check_text(value, what)


def check_key(key: object) -> str:
    """Return `key` if it is a valid document key: a non-empty str of at most 1024 characters."""
    return _check_name(key, "key", MAX_KEY_LENGTH)


def check_prefix(prefix: object, what: str = "prefix") -> str:
    """Return `prefix` if it can be compared with stored keys (any str, empty included)."""
    return _check_text(prefix, what)


def check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    return limit


def check_preconditions(if_match: str | None, if_none_match: bool) -> None:
    # if_match demands the key exists and if_none_match that it does not: together they can never hold.
    if if_match is not None and if_none_match:
        raise ValueError("if_match and if_none_match cannot be combined")
    if if_match is not None and not isinstance(if_match, str):
        raise TypeError(f"if_match must be a str ETag, not {type(if_match).__name__}")


def check_container(container: object) -> str:
    """Return `container` if it is a valid Azure Blob Storage container name."""
    if not isinstance(container, str) or not _CONTAINER.fullmatch(container):
        raise ValueError(
            f"invalid container name {container!r}: use 3-63 lowercase letters, digits and single hyphens, "
            "starting and ending with a letter or digit"
        )
    return container


def check_blob_name(name: object) -> str:
    """Return `name` if it is a valid blob name: a non-empty str of at most 1024 characters."""
    return _check_name(name, "blob name", MAX_BLOB_NAME_LENGTH)


def blob_bytes(data: object) -> bytes:
    """The bytes to store for `data`: str is UTF-8 encoded, bytes-like objects are copied."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"blob data must be bytes or str, not {type(data).__name__}")


_ENCODE = strict_json.encoder()


def encode_value(value: Any) -> str:
    """The stored JSON text of `value`; ValueError/TypeError if it is not JSON (NaN and infinities included)."""
    if type(value) is EncodedObject:
        return value.text
    return _ENCODE(value)


class EncodedObject(dict[str, Any]):
    """A JSON object written as text put together from parts encoded before (`with_encoded_list`), which
    `encode_value` returns instead of encoding the object again. It is the same object for code that reads it."""

    __slots__ = ("text",)

    def __init__(self, value: dict[str, Any], text: str) -> None:
        super().__init__(value)
        self.text = text


def with_encoded_list(value: dict[str, Any], name: str, items: list[Any], texts: list[str]) -> EncodedObject:
    """`value` with member `name` set to `items`, whose texts (`encode_value` of each) were kept from before:
    the other members are encoded now, the list's items are not encoded again (a context head's log, which
    grows by one delta a commit, would otherwise be encoded whole on every commit)."""
    rest = _ENCODE({k: v for k, v in value.items() if k != name})
    member = f'{_ENCODE(name)}:[{",".join(texts)}]'
    return EncodedObject({**value, name: items}, f"{rest[:-1]}{',' if len(rest) > 2 else ''}{member}}}")


class RequestPerDocument:
    """`get_many` and `create_many` for a store with no batch read or write that spans keys (Blob Storage, Cosmos
    DB): one `get`, or one create-only `put`, per document, all at once."""

    if TYPE_CHECKING:  # the store's own
        async def get(self, key: str) -> Document | None: ...

        async def put(self, key: str, value: JSON, *, if_match: str | None = None,
                      if_none_match: bool = False) -> str: ...

    async def get_many(self, keys: Sequence[str]) -> list[Document | None]:
        """The document at each key, or None."""
        return list(await asyncio.gather(*(self.get(key) for key in keys)))

    async def create_many(self, items: Sequence[tuple[str, JSON]]) -> list[str | None]:
        """Create each document whose key does not exist yet: its ETag, or None where the key existed."""
        for key, value in items:  # a bad item fails the call before anything is written, as in the other stores
            check_key(key)
            encode_value(value)

        async def create(key: str, value: JSON) -> str | None:
            try:
                return await self.put(key, value, if_none_match=True)
            except ConflictError:
                return None

        # A key given twice is sent once (its later items find it existing): two racing creates of one key are not
        # something every store settles.
        first: dict[str, JSON] = {}
        for key, value in items:
            first.setdefault(key, value)
        etags = dict(zip(first, await asyncio.gather(*(create(key, value) for key, value in first.items())),
                         strict=True))
        answered: set[str] = set()
        created: list[str | None] = []
        for key, _ in items:
            created.append(None if key in answered else etags[key])
            answered.add(key)
        return created


def decode_value(text: str) -> Any:
    return json.loads(text)


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`, or None when there is none.

    Keys starting with `prefix` are exactly those with `prefix <= key < prefix_end(prefix)`, which an index
    range scan answers; LIKE would treat `%` and `_` in keys as wildcards and defeat the index.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < _MAX_CHAR:
            nxt = last + 1
            if nxt in _SURROGATES:  # not storable text; the next code point after them sorts the same way
                nxt = _SURROGATES.stop
            return "".join(chars) + chr(nxt)
    return None  # empty prefix, or only U+10FFFF characters: no upper bound


class EtagFactory:
    """Opaque ETags, different on every write.

    A random per-instance prefix plus a counter: cheaper than random bytes per write, and a store reopened on
    the same file never hands out an ETag it issued before (which would let a stale if_match win).
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"
