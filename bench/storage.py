"""StateStore benchmarks: documents/s for get and conditional put, on SQLite and on Blob Storage (Azurite), in one
run. Prints one JSON line per metric; not a test (run by hand or with --small in CI).

  get_docs_per_s            concurrent `get` of existing 1 KB documents
  conditional_put_docs_per_s concurrent `put(..., if_match=etag)` replacing each document once (no conflicts)

Azurite is started from node_modules on free loopback ports (`npm install` first), unless AzureWebJobsStorage is
set, in which case that account is measured (a real Storage account gives very different numbers: network bound).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.storage import SqliteStateStore
from services.storage.connections import development_connection_string, resolve_storage_connection

REPO = Path(__file__).resolve().parent.parent


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 1), "unit": unit, **extra}), flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def azurite() -> Iterator[str]:
    """A connection string: AzureWebJobsStorage if set, else a throwaway Azurite."""
    if os.environ.get("AzureWebJobsStorage"):
        yield os.environ["AzureWebJobsStorage"]
        return
    binary = REPO / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise SystemExit("Azurite is not installed: run `npm install` in the repository first")
    ports = {"blob": _free_port(), "queue": _free_port(), "table": _free_port()}
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


async def run(docs: int, concurrency: int, connection_string: str) -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    docs = args.docs or (200 if args.small else 2000)
    with azurite() as connection_string:
        asyncio.run(run(docs, args.concurrency, connection_string))


if __name__ == "__main__":
    main()
