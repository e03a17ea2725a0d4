"""A session-scoped local Cosmos DB server (`@vercel/cosmosdb-server` from the repo's package.json).

Registered in tests/conftest.py through `pytest_plugins`. `tests/cosmosdb_server.js` starts it on loopback on a
free port (plain HTTP, keep-alive, a 404 for a missing item where the package answers 500); it keeps its data in
memory and is stopped at the end of the session. Tests that use the fixture are skipped with a clear message only
when Node.js is missing; a missing `node_modules` is installed with `npm install`.
"""

from __future__ import annotations

import selectors
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import pytest

from tests.azurite import START_TIMEOUT
from tests.support.node_tools import REPO, node_with, stop

LAUNCHER = REPO / "tests" / "cosmosdb_server.js"
SERVER_PACKAGE = REPO / "node_modules" / "@vercel" / "cosmosdb-server"
# The Cosmos DB emulator's well-known account key (public, documented by Microsoft; not a secret). The local
# server accepts any key; the SDK still signs every request with it, as it would for the real service.
EMULATOR_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="


@dataclass(frozen=True)
class CosmosServer:
    endpoint: str

    @property
    def connection_string(self) -> str:
        """A key-based connection string for this server (what `<name>` holds for a key connection)."""
        return f"AccountEndpoint={self.endpoint};AccountKey={EMULATOR_KEY};"


def _start(process: subprocess.Popen[bytes], errors: IO[bytes]) -> int:
    """The port the launcher printed once listening (`ready <port>`)."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.2):
                line = process.stdout.readline().decode(errors="replace").strip()
                if line.startswith("ready "):
                    return int(line.split()[1])
                if not line and process.poll() is not None:
                    break
    errors.seek(0)
    stderr = errors.read().decode(errors="replace")
    raise RuntimeError(f"the local Cosmos DB server did not start within {START_TIMEOUT:.0f} s: {stderr[-2000:]}")


@contextmanager
def run_cosmosdb_server(node: str) -> Iterator[CosmosServer]:
    """Start the launcher with `node` on a free loopback port; stop it on exit (also used by bench/storage.py)."""
    # stderr goes to a file, not a pipe nobody reads: the server logs every failed request there.
    errors = tempfile.TemporaryFile(prefix="cosmosdb-server-")
    # Port 0: the server takes a free port itself and says which, so two sessions never race for one.
    process = subprocess.Popen([node, str(LAUNCHER), "0"], cwd=REPO, stdout=subprocess.PIPE, stderr=errors)
    try:
        port = _start(process, errors)
        yield CosmosServer(f"http://127.0.0.1:{port}/")
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()
        errors.close()


@pytest.fixture(scope="session")
def cosmosdb() -> Iterator[CosmosServer]:
    """A running local Cosmos DB server; skipped only when Node.js is missing."""
    with run_cosmosdb_server(node_with(SERVER_PACKAGE, "@vercel/cosmosdb-server")) as server:
        yield server
