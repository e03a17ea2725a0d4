"""StateStore and BlobStore on Azure Blob Storage (async client): one JSON blob per document, ETag preconditions.

Documents live in one container (default `aos-state`), blob name = the key encoded so that names sort and
prefix-match exactly like the keys (see `encode_key`). Blobs of the BlobStore port live in the container the
caller names, under the name it gives. Containers are created on first write. Only this module and
`connections.py` touch azure-storage-blob, and only when the Azure backend is selected.
"""

from __future__ import annotations

import asyncio
import builtins
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import JSON, Document
from services.storage.keys import (
    RequestPerDocument,
    blob_bytes,
    check_blob_name,
    check_container,
    check_key,
    check_limit,
    check_preconditions,
    check_prefix,
    decode_value,
    encode_value,
)
from services.storage.outages import outages_unavailable

if TYPE_CHECKING:
    from services.storage.connections import StorageConnection

T = TypeVar("T")
DEFAULT_CONTAINER = "aos-state"
MAX_BLOB_NAME = 1024
_LIST_PAGE = 5000  # the service's largest page
_FETCH_CONCURRENCY = 32  # parallel downloads when a listing needs the documents' values
_RESUME_SLOTS = 256  # remembered continuation tokens for `start_after` paging

# Key bytes (UTF-8) in 0x00-0x2E become `.XX` and in 0x7E-0xFF `~XX` (hex, upper case); the rest stay. Every
# escaped low byte sorts below every literal one and `.` is the largest of them; `~` is above every literal, so
# encoded names sort in the same order as the keys' code points and a key prefix encodes to a name prefix.
# No name gets a `.`/`..` path segment, a control character or a trailing dot that HTTP clients would rewrite.
_LITERAL = frozenset(range(0x2F, 0x7E))


def encode_key(key: str) -> str:
    """The blob name of a document key (order- and prefix-preserving, URL-safe)."""
    out = []
    for byte in key.encode("utf-8"):
        if byte in _LITERAL:
            out.append(chr(byte))
        else:
            out.append(f"{'.' if byte < 0x2F else '~'}{byte:02X}")
    return "".join(out)


def decode_key(name: str) -> str:
    """The document key of a blob name made by `encode_key`."""
    data = bytearray()
    i = 0
    while i < len(name):
        char = name[i]
        if char in ".~":
            data.append(int(name[i + 1 : i + 3], 16))
            i += 3
        else:
            data.append(ord(char))
            i += 1
    return data.decode("utf-8")


def _blob_name(key: str) -> str:
    name = encode_key(check_key(key))
    if len(name) > MAX_BLOB_NAME:
        raise ValueError(f"key is {len(name)} characters long once encoded for Blob Storage; the limit is "
                         f"{MAX_BLOB_NAME} (characters outside ASCII letters, digits and /:;<=>?@[]^_`{{|}} take 3)")
    return name


def _container_missing(exc: ResourceNotFoundError) -> bool:
    return getattr(exc, "error_code", None) == "ContainerNotFound"


class BlobStateStore(RequestPerDocument):
    """JSON documents with ETags and blobs on Azure Blob Storage; implements StateStore and BlobStore.

    `if_match` sends `If-Match: <etag>`, `if_none_match` sends `If-None-Match: *`; the service checks them
    atomically with the write, and a 412/409 becomes ConflictError. Build it from a resolved connection, or
    pass an existing async `BlobServiceClient`.
    """

    def __init__(
        self,
        connection: StorageConnection | None = None,
        *,
        service_client: Any = None,
        container: str = DEFAULT_CONTAINER,
    ) -> None:
        if (connection is None) == (service_client is None):
            raise ValueError("pass exactly one of connection or service_client")
        self.container = check_container(container)
        self._connection = connection
        self._client = service_client
        self._credential: Any = None
        self._resume: OrderedDict[tuple[str, str], str | None] = OrderedDict()

    @property
    def service_client(self) -> Any:
        if self._client is None:
            assert self._connection is not None
            self._credential = self._connection.credential()
            self._client = self._connection.blob_service_client(self._credential)
        return self._client

    async def _in_container(self, container: str, write: Callable[[Any], Awaitable[T]]) -> T:
        """Run `write(container_client)`, creating the container first if the service says it is missing."""
        client = self.service_client.get_container_client(container)
        try:
            return await write(client)
        except ResourceNotFoundError as exc:
            if not _container_missing(exc):
                raise
        try:
            await client.create_container()
        except ResourceExistsError:
            pass  # another writer created it first
        return await write(client)

    # --- documents ----------------------------------------------------------------------------------

    @outages_unavailable
    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        name = _blob_name(key)
        found = await self._read(name)
        return None if found is None else Document(key, found[0], found[1])

    @outages_unavailable
    async def etag(self, key: str) -> str | None:
        """The ETag of the document at `key`, or None: its properties (a HEAD request), not its content."""
        blob = self.service_client.get_blob_client(self.container, _blob_name(key))
        try:
            properties = await blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        return str(properties.etag)

    async def _read(self, name: str) -> tuple[JSON, str] | None:
        blob = self.service_client.get_blob_client(self.container, name)
        try:
            downloader = await blob.download_blob()
            data = await downloader.readall()
        except ResourceNotFoundError:
            return None
        return decode_value(data.decode("utf-8")), downloader.properties.etag

    @outages_unavailable
    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return its new ETag; ConflictError when `if_match`/`if_none_match` does not hold."""
        name = _blob_name(key)
        check_preconditions(if_match, if_none_match)
        data = encode_value(value).encode("utf-8")
        kwargs: dict[str, Any] = {"overwrite": not if_none_match}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)

        async def write(container: Any) -> str:
            result = await container.get_blob_client(name).upload_blob(data, content_settings=_json_content(),
                                                                        **kwargs)
            return str(result["etag"])

        try:
            if if_match is not None:  # a missing container means a missing document: no need to create it
                return await write(self.service_client.get_container_client(self.container))
            return await self._in_container(self.container, write)
        except ResourceModifiedError:
            raise ConflictError(key, "ETag does not match (stale or missing)") from None
        except ResourceExistsError:
            raise ConflictError(key, "already exists") from None
        except ResourceNotFoundError:
            raise ConflictError(key, "ETag does not match (stale or missing)") from None

    @outages_unavailable
    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. With `if_match`, ConflictError if stale or missing."""
        name = _blob_name(key)
        check_preconditions(if_match, False)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        try:
            await self.service_client.get_blob_client(self.container, name).delete_blob(**kwargs)
        except ResourceModifiedError:
            raise ConflictError(key, "ETag does not match (stale or missing)") from None
        except ResourceNotFoundError:
            if if_match is not None:
                raise ConflictError(key, "ETag does not match (stale or missing)") from None
            return False
        return True

    @outages_unavailable
    async def list(self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000) -> list[Document]:
        """Documents whose key starts with `prefix`, in key order, after `start_after`, at most `limit`."""
        check_prefix(prefix)
        if start_after is not None:
            check_prefix(start_after, "start_after")
        check_limit(limit)
        if limit == 0:
            return []
        names = await self._names(self.container, encode_key(prefix),
                                  None if start_after is None else encode_key(start_after), limit)
        gate = asyncio.Semaphore(_FETCH_CONCURRENCY)

        async def fetch(name: str) -> Document | None:
            async with gate:
                found = await self._read(name)
            return None if found is None else Document(decode_key(name), found[0], found[1])

        docs = await asyncio.gather(*(fetch(name) for name in names))
        return [doc for doc in docs if doc is not None]  # deleted between listing and reading: skipped

    @outages_unavailable
    async def count(self, prefix: str = "") -> int:
        """How many documents have a key starting with `prefix`."""
        check_prefix(prefix)
        return len(await self._names(self.container, encode_key(prefix), None, None))

    async def _names(self, container: str, prefix: str, start_after: str | None, limit: int | None) -> list[str]:
        """Blob names starting with `prefix`, after `start_after`, in name order, up to `limit`.

        The service cannot start a listing at a name, so a page that ends inside a service page remembers that
        page's continuation token: the next `start_after` call resumes there instead of listing from the start.
        """
        token = self._resume.pop((prefix, start_after), None) if start_after is not None else None
        client = self.service_client.get_container_client(container)
        pages = client.list_blobs(name_starts_with=prefix or None, results_per_page=_LIST_PAGE).by_page(
            continuation_token=token
        )
        names: builtins.list[str] = []
        fetch_token = token
        try:
            async for page in pages:
                async for item in page:
                    if start_after is not None and item.name <= start_after:
                        continue
                    names.append(item.name)
                    if limit is not None and len(names) >= limit:
                        self._remember((prefix, item.name), fetch_token)
                        return names
                fetch_token = pages.continuation_token
        except ResourceNotFoundError as exc:
            if not _container_missing(exc):
                raise
        return names

    def _remember(self, slot: tuple[str, str], token: str | None) -> None:
        self._resume[slot] = token
        while len(self._resume) > _RESUME_SLOTS:
            self._resume.popitem(last=False)

    # --- blobs --------------------------------------------------------------------------------------

    @outages_unavailable
    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag; ConflictError if it exists and not `overwrite`."""
        check_container(container)
        check_blob_name(name)
        payload = blob_bytes(data)

        async def write(client: Any) -> str:
            return str((await client.get_blob_client(name).upload_blob(payload, overwrite=overwrite))["etag"])

        try:
            return await self._in_container(container, write)
        except ResourceExistsError:
            raise ConflictError(f"{container}/{name}", "blob already exists") from None

    @outages_unavailable
    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        check_container(container)
        check_blob_name(name)
        try:
            downloader = await self.service_client.get_blob_client(container, name).download_blob()
            return bytes(await downloader.readall())
        except ResourceNotFoundError:
            raise NotFoundError(f"blob {container}/{name} not found") from None

    @outages_unavailable
    async def delete_blob(self, container: str, name: str) -> bool:
        """Delete the blob; False if it did not exist."""
        check_container(container)
        check_blob_name(name)
        try:
            await self.service_client.get_blob_client(container, name).delete_blob()
        except ResourceNotFoundError:
            return False
        return True

    @outages_unavailable
    async def list_blobs(self, container: str, prefix: str = "") -> builtins.list[str]:
        """Names of the blobs in `container` starting with `prefix`, in name order ([] for an unknown container)."""
        check_container(container)
        check_prefix(prefix)
        return sorted(await self._names(container, prefix, None, None))

    async def close(self) -> None:
        """Close the HTTP session (and the credential this store made); the store reopens on next use."""
        if self._connection is None:
            return  # the caller's client: the caller closes it
        client, self._client = self._client, None
        credential, self._credential = self._credential, None
        if client is not None:
            await client.close()
        if credential is not None:
            await credential.close()


def _json_content() -> Any:
    from azure.storage.blob import ContentSettings

    return ContentSettings(content_type="application/json")
