"""StateStore benchmarks: documents/s for get and conditional put, on SQLite, on Blob Storage (Azurite) and on
Cosmos DB (the local Cosmos DB server), in one run. Prints one JSON line per metric; not a test (run by hand or
with --small in CI).

  get_docs_per_s            concurrent `get` of existing 1 KB documents
  conditional_put_docs_per_s concurrent `put(..., if_match=etag)` replacing each document once (no conflicts)
  list_docs_per_s           `list(prefix, start_after=..., limit=100)` pages through every document, one page at a time

Azurite is started from node_modules on free loopback ports (`npm install` first), unless AzureWebJobsStorage is
set, in which case that account is measured (a real Storage account gives very different numbers: network bound).
The Cosmos DB server is the test suite's (tests/cosmosdb_server.js, from node_modules), unless CosmosDBConnection is
set (a key connection string). The local server is an in-memory JavaScript model of the service: its figures show
the adapter's and the SDK's cost per call, not the service's latency, RU charges or throttling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/http.py would shadow the standard
# library's `http` (which the Azure SDKs import); the repository root takes its place (tests.cosmosdb is there).
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

from services.devhost.instances import free_port  # noqa: E402
from services.storage import SqliteStateStore  # noqa: E402
from services.storage.connections import development_connection_string, resolve_storage_connection  # noqa: E402


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 1), "unit": unit, **extra}), flush=True)


@contextmanager
def azurite() -> Iterator[str]:
    """A connection string: AzureWebJobsStorage if set, else a throwaway Azurite."""
    if os.environ.get("AzureWebJobsStorage"):
        yield os.environ["AzureWebJobsStorage"]
        return
    binary = REPO / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise SystemExit("Azurite is not installed: run `npm install` in the repository first")
    ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
    folder = tempfile.mkdtemp(prefix="azurite-bench-")
    args = [str(binary), "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--location", folder]
    for service, port in ports.items():
        args += [f"--{service}Host", "127.0.0.1", f"--{service}Port", str(port)]
    process = subprocess.Popen(args, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", ports["blob"])) == 0:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("Azurite did not start")
            time.sleep(0.05)
        yield development_connection_string("127.0.0.1", ports)
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def cosmos() -> Iterator[str]:
    """A Cosmos DB connection string: CosmosDBConnection if set, else the test suite's local server."""
    if os.environ.get("CosmosDBConnection"):
        yield os.environ["CosmosDBConnection"]
        return
    from tests.cosmosdb import SERVER_PACKAGE, run_cosmosdb_server

    node = shutil.which("node")
    if node is None or not SERVER_PACKAGE.exists():
        raise SystemExit("the local Cosmos DB server needs Node.js and `npm install` in the repository first")
    with run_cosmosdb_server(node) as server:
        yield server.connection_string


async def measure(store: Any, backend: str, docs: int, concurrency: int) -> None:
    value = {"payload": "x" * 1000}
    keys = [f"bench/{i:06d}" for i in range(docs)]
    gate = asyncio.Semaphore(concurrency)

    async def limited(work: Any) -> Any:
        async with gate:
            return await work

    etags = await asyncio.gather(*(limited(store.put(key, value)) for key in keys))
    start = time.perf_counter()
    found = await asyncio.gather(*(limited(store.get(key)) for key in keys))
    elapsed = time.perf_counter() - start
    assert all(doc is not None for doc in found)
    emit("get_docs_per_s", docs / elapsed, "docs/s", backend=backend, docs=docs, concurrency=concurrency)

    start = time.perf_counter()
    await asyncio.gather(*(limited(store.put(key, {"v": 2, **value}, if_match=etag))
                           for key, etag in zip(keys, etags, strict=True)))
    elapsed = time.perf_counter() - start
    emit("conditional_put_docs_per_s", docs / elapsed, "docs/s", backend=backend, docs=docs, concurrency=concurrency)

    start = time.perf_counter()
    listed, cursor = 0, None
    while page := await store.list("bench/", start_after=cursor, limit=100):
        listed += len(page)
        cursor = page[-1].key
    elapsed = time.perf_counter() - start
    assert listed == docs
    emit("list_docs_per_s", docs / elapsed, "docs/s", backend=backend, docs=docs, page=100)


async def run(docs: int, concurrency: int, connection_string: str, cosmos_connection: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        sqlite = SqliteStateStore(Path(folder) / "state.db")
        await measure(sqlite, "sqlite", docs, concurrency)
        await sqlite.close()
    from services.storage.blob import BlobStateStore

    connection = resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": connection_string})
    blob = BlobStateStore(connection, container=f"bench-{uuid.uuid4().hex[:12]}")
    await measure(blob, "azure-blob", docs, concurrency)
    await blob.service_client.delete_container(blob.container)
    await blob.close()
    from services.storage.connections import resolve_cosmos_connection
    from services.storage.cosmos import CosmosStateStore

    store = CosmosStateStore(resolve_cosmos_connection("CosmosDBConnection", {"CosmosDBConnection": cosmos_connection}),
                             database=f"bench-{uuid.uuid4().hex[:12]}")
    await measure(store, "cosmos", docs, concurrency)
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    docs = args.docs or (200 if args.small else 2000)
    with azurite() as connection_string, cosmos() as cosmos_connection:
        asyncio.run(run(docs, args.concurrency, connection_string, cosmos_connection))


if __name__ == "__main__":
    main()
