"""A storage service that cannot be reached is StorageUnavailableError, which the kernel waits out (the event stays
pending) instead of failing events for it. Here the service is a port nothing listens on, with the SDK's own
retries turned off so the test does not wait them out; what a 5xx or 429 becomes is checked on the SDK's own
exception types."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

from aos_core.errors import StorageUnavailableError
from services.storage.connections import development_connection_string
from services.storage.outages import as_outage
from tests.support.host_process import free_port


@contextlib.asynccontextmanager
async def _blob_store() -> AsyncIterator[Any]:
    from azure.storage.blob.aio import BlobServiceClient

    from services.storage.blob import BlobStateStore

    port = free_port()
    conn = development_connection_string("127.0.0.1", {"blob": port, "queue": port, "table": port})
    async with BlobServiceClient.from_connection_string(conn, retry_total=0) as client:
        yield BlobStateStore(service_client=client)


@contextlib.asynccontextmanager
async def _cosmos_store() -> AsyncIterator[Any]:
    from services.storage.connections import resolve_cosmos_connection
    from services.storage.cosmos import CosmosStateStore

    key = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
    setting = f"AccountEndpoint=http://127.0.0.1:{free_port()}/;AccountKey={key};"
    connection = resolve_cosmos_connection("CosmosDBConnection", {"CosmosDBConnection": setting})
    store = CosmosStateStore(connection, retry_total=0, connection_timeout=2)
    try:
        yield store
    finally:
        await store.close()


@pytest.mark.parametrize("make", [_blob_store, _cosmos_store], ids=["azure", "cosmos"])
async def test_an_unreachable_service_is_storage_unavailable(make: Any) -> None:
    started = time.monotonic()
    async with make() as store:
        with pytest.raises(StorageUnavailableError, match="storage unavailable"):
            await store.put("context/t1", {"n": 1})
        with pytest.raises(StorageUnavailableError):
            await store.get("context/t1")
    assert time.monotonic() - started < 60


async def test_an_unreachable_table_service_is_storage_unavailable_for_the_index_and_the_audit_log() -> None:
    from azure.data.tables.aio import TableServiceClient

    from aos_core.ports import AgentIndexEntry
    from services.governance.table_audit import TableAuditLog
    from services.storage.tables import TableAgentIndex

    port = free_port()
    conn = development_connection_string("127.0.0.1", {"blob": port, "queue": port, "table": port})
    async with TableServiceClient.from_connection_string(conn, retry_total=0) as service:
        index, audit = TableAgentIndex(service_client=service), TableAuditLog(service_client=service)
        with pytest.raises(StorageUnavailableError):
            await index.put(AgentIndexEntry(agent_id="t1", agent_type="tally", state="running"))
        with pytest.raises(StorageUnavailableError):
            await audit.append("kernel", "event.accepted", "event/e1")
        await index.close()
        await audit.close()


async def test_an_unreachable_queue_service_is_storage_unavailable() -> None:
    from azure.storage.queue.aio import QueueServiceClient

    from services.storage.queues import StorageWorkQueue

    port = free_port()
    conn = development_connection_string("127.0.0.1", {"blob": port, "queue": port, "table": port})
    async with QueueServiceClient.from_connection_string(conn, retry_total=0) as service:
        queue = StorageWorkQueue("work", service_client=service)
        with pytest.raises(StorageUnavailableError):
            await queue.send({"n": 1})
        with pytest.raises(StorageUnavailableError):
            await queue.receive()


def test_only_outages_are_storage_unavailable() -> None:
    assert as_outage(ServiceRequestError("connection refused")) is not None
    for status in (500, 503, 408, 429):
        error = HttpResponseError(f"status {status}")
        error.status_code = status
        assert as_outage(error) is not None, status
    for status in (400, 403, 409, 412):
        error = HttpResponseError(f"status {status}")
        error.status_code = status
        assert as_outage(error) is None, status
    assert as_outage(ResourceNotFoundError("missing")) is None
    assert as_outage(ValueError("not JSON")) is None
