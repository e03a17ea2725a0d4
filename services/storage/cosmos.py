"""StateStore and BlobStore on Azure Cosmos DB for NoSQL (async client), selected with `storage.backend=cosmos`.

Two containers in one database (default `aos`):
- `state`: one item per document. Item ids may not contain `/` and are at most 255 characters, so the id is the
  SHA-256 of the key, which is also the partition key (`/id`): documents spread evenly over partitions and every
  get, put and delete is a point operation on one partition. The item holds the key (`docKey`), an order- and
  prefix-preserving ASCII form of it (`sortKey`, see `blob.encode_key`; the only indexed path) for prefix
  listing in key order, and the value as its JSON text (`json`), so 64-bit integers, `-0.0` and every string
  come back exactly (the service's numbers are doubles).
- `blobs`: one item per blob, partitioned by the BlobStore container name (`/container`), id = SHA-256 of the
  blob name, the bytes in base64 (`data`). An item is at most 2 MB, so blobs here are at most MAX_BLOB_BYTES;
  larger files belong on Blob Storage (`Storage(cosmos_store, blob_store=BlobStateStore(...))`).

Preconditions are the service's own: `if_match` is `replace_item(..., etag=, match_condition=IfNotModified)`
(412 on a stale ETag), `if_none_match` is `create_item` (409 if the id exists); both become ConflictError.
Throttling (429) is retried by the SDK itself, honouring the service's retry-after, up to `retry_total`
attempts within `retry_backoff_max` seconds (constructor keywords passed to the CosmosClient). Only this module
and `connections.py` touch azure-cosmos, and only when this backend is selected.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, cast

from azure.core import MatchConditions
from azure.cosmos import PartitionKey
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import JSON, Document
from services.storage.blob import encode_key
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
    from services.storage.connections import CosmosConnection

DEFAULT_DATABASE = "aos"
STATE_CONTAINER = "state"
BLOB_CONTAINER = "blobs"
MAX_BLOB_BYTES = 1_500_000  # base64 makes it 2,000,000 characters: inside the 2 MB item limit
_STALE = "ETag does not match (stale or missing)"
# Only `sortKey` (and the blob container name) is queried; indexing nothing else keeps writes cheap in RUs.
STATE_INDEXING = {"indexingMode": "consistent", "includedPaths": [{"path": "/sortKey/?"}],
                  "excludedPaths": [{"path": "/*"}]}
BLOB_INDEXING = {"indexingMode": "consistent",
                 "includedPaths": [{"path": "/sortKey/?"}, {"path": "/container/?"}],
                 "excludedPaths": [{"path": "/*"}]}


def item_id(name: str) -> str:
    """The item id (and partition key) of a document key or blob name: fixed length, no forbidden character."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


class CosmosStateStore(RequestPerDocument):
    """JSON documents with ETags and (small) blobs in Cosmos DB; implements StateStore and BlobStore.

    Build it from a resolved connection, or pass an existing async `CosmosClient` (the caller closes that one).
    The database and containers are created on first use when missing; with Entra ID (data-plane RBAC) creating
    them is not allowed, so a deployment creates them first (infra/core/cosmos.bicep) and this only reads them.
    """

    def __init__(self, connection: CosmosConnection | None = None, *, client: Any = None,
                 database: str = DEFAULT_DATABASE, **client_options: Any) -> None:
        if (connection is None) == (client is None):
            raise ValueError("pass exactly one of connection or client")
        self.database = database
        self._connection = connection
        self._client = client
        self._client_options = client_options
        self._stack: AsyncExitStack | None = None
        self._containers: tuple[Any, Any] | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> tuple[Any, Any]:
        """The (state, blobs) container clients, opening the client and creating what is missing once."""
        if self._containers is not None:
            return self._containers
        async with self._opening:
            if self._containers is None:
                stack = AsyncExitStack()
                try:
                    client = self._client
                    if client is None:
                        assert self._connection is not None
                        credential = self._connection.credential()
                        if credential is not None:
                            stack.push_async_callback(credential.close)
                        client = self._connection.client(credential, **self._client_options)
                        # Closed also when opening fails (the service unreachable, say): entering it starts
                        # an HTTP session that a failed __aenter__ leaves open.
                        stack.push_async_callback(client.close)
                        await client.__aenter__()
                    self._containers = await self._create(client)
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
        return self._containers

    async def _create(self, client: Any) -> tuple[Any, Any]:
        try:
            database = await client.create_database_if_not_exists(self.database)
            state = await database.create_container_if_not_exists(
                STATE_CONTAINER, PartitionKey("/id"), indexing_policy=STATE_INDEXING)
            blobs = await database.create_container_if_not_exists(
                BLOB_CONTAINER, PartitionKey("/container"), indexing_policy=BLOB_INDEXING)
        except CosmosHttpResponseError as exc:
            if exc.status_code == 403:
                raise PermissionError(
                    f"Cosmos DB database {self.database!r} with containers {STATE_CONTAINER!r} and "
                    f"{BLOB_CONTAINER!r} is missing and this identity may not create it: deploy it first "
                    "(infra/core/cosmos.bicep)") from None
            raise
        return state, blobs

    # --- documents ----------------------------------------------------------------------------------

    @outages_unavailable
    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        item = await self._item(key)
        return None if item is None else Document(key, decode_value(item["json"]), item["_etag"])

    @outages_unavailable
    async def etag(self, key: str) -> str | None:
        """The ETag of the document at `key`, or None (a point read: Cosmos DB has no cheaper one; not decoded)."""
        item = await self._item(key)
        return None if item is None else str(item["_etag"])

    async def _item(self, key: str) -> dict[str, Any] | None:
        ident = item_id(check_key(key))
        state, _ = await self._open()
        try:
            return cast(dict[str, Any], await state.read_item(ident, partition_key=ident))
        except CosmosResourceNotFoundError:
            return None

    @outages_unavailable
    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return its new ETag; ConflictError when `if_match`/`if_none_match` does not hold."""
        ident = item_id(check_key(key))
        check_preconditions(if_match, if_none_match)
        body = {"id": ident, "docKey": key, "sortKey": encode_key(key), "json": encode_value(value)}
        state, _ = await self._open()
        try:
            if if_match is not None:
                item = await state.replace_item(ident, body, etag=if_match,
                                                match_condition=MatchConditions.IfNotModified)
            elif if_none_match:
                item = await state.create_item(body)
            else:
                item = await state.upsert_item(body)
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            raise ConflictError(key, _STALE) from None
        except CosmosResourceExistsError:
            raise ConflictError(key, "already exists") from None
        except CosmosHttpResponseError as exc:
            if exc.status_code == 413:
                raise ValueError(f"document {key!r} is larger than a Cosmos DB item may be (2 MB)") from None
            raise
        return str(item["_etag"])

    @outages_unavailable
    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. With `if_match`, ConflictError if stale or missing."""
        ident = item_id(check_key(key))
        check_preconditions(if_match, False)
        kwargs: dict[str, Any] = {}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        state, _ = await self._open()
        try:
            await state.delete_item(ident, partition_key=ident, **kwargs)
        except CosmosAccessConditionFailedError:
            raise ConflictError(key, _STALE) from None
        except CosmosResourceNotFoundError:
            if if_match is not None:
                raise ConflictError(key, _STALE) from None
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
        where = "STARTSWITH(c.sortKey, @prefix)"
        parameters: builtins.list[dict[str, Any]] = [{"name": "@prefix", "value": encode_key(prefix)},
                                                     {"name": "@limit", "value": limit}]
        if start_after is not None:
            where += " AND c.sortKey > @after"
            parameters.append({"name": "@after", "value": encode_key(start_after)})
        state, _ = await self._open()
        # Cross-partition (documents are spread by key hash); the SDK merges the partitions' ordered pages.
        query = state.query_items(
            f"SELECT TOP @limit c.docKey, c.json, c._etag FROM c WHERE {where} ORDER BY c.sortKey",
            parameters=parameters, max_item_count=min(limit, 1000))
        return [Document(item["docKey"], decode_value(item["json"]), item["_etag"]) async for item in query]

    @outages_unavailable
    async def count(self, prefix: str = "") -> int:
        """How many documents have a key starting with `prefix`."""
        check_prefix(prefix)
        state, _ = await self._open()
        query = state.query_items("SELECT VALUE COUNT(1) FROM c WHERE STARTSWITH(c.sortKey, @prefix)",
                                  parameters=[{"name": "@prefix", "value": encode_key(prefix)}])
        return sum([int(n) async for n in query])  # one partial count per partition range, or one total

    # --- blobs --------------------------------------------------------------------------------------

    @outages_unavailable
    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag; ConflictError if it exists and not `overwrite`."""
        check_container(container)
        check_blob_name(name)
        payload = blob_bytes(data)
        if len(payload) > MAX_BLOB_BYTES:
            raise ValueError(f"blob {container}/{name} is {len(payload)} bytes; Cosmos DB keeps blobs up to "
                             f"{MAX_BLOB_BYTES} bytes (store larger ones on Blob Storage)")
        body = {"id": item_id(name), "container": container, "name": name, "sortKey": encode_key(name),
                "data": base64.b64encode(payload).decode("ascii")}
        _, blobs = await self._open()
        try:
            item = await (blobs.upsert_item(body) if overwrite else blobs.create_item(body))
        except CosmosResourceExistsError:
            raise ConflictError(f"{container}/{name}", "blob already exists") from None
        return str(item["_etag"])

    @outages_unavailable
    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        check_container(container)
        check_blob_name(name)
        _, blobs = await self._open()
        try:
            item = await blobs.read_item(item_id(name), partition_key=container)
        except CosmosResourceNotFoundError:
            raise NotFoundError(f"blob {container}/{name} not found") from None
        return base64.b64decode(item["data"])

    @outages_unavailable
    async def delete_blob(self, container: str, name: str) -> bool:
        """Delete the blob; False if it did not exist."""
        check_container(container)
        check_blob_name(name)
        _, blobs = await self._open()
        try:
            await blobs.delete_item(item_id(name), partition_key=container)
        except CosmosResourceNotFoundError:
            return False
        return True

    @outages_unavailable
    async def list_blobs(self, container: str, prefix: str = "") -> builtins.list[str]:
        """Names of the blobs in `container` starting with `prefix`, in name order ([] for an unknown container)."""
        check_container(container)
        check_prefix(prefix)
        _, blobs = await self._open()
        query = blobs.query_items(
            "SELECT c.name FROM c WHERE c.container = @container AND STARTSWITH(c.sortKey, @prefix) "
            "ORDER BY c.sortKey",
            parameters=[{"name": "@container", "value": container}, {"name": "@prefix", "value": encode_key(prefix)}],
            partition_key=container)
        return [item["name"] async for item in query]

    async def close(self) -> None:
        """Close the client (and the credential) this store opened; the store reopens on next use."""
        stack, self._stack = self._stack, None
        self._containers = None
        if stack is not None:
            await stack.aclose()
