"""A session-scoped Azurite (the Azure Storage emulator) from the repo's own package.json.

Registered in tests/conftest.py through `pytest_plugins`. Azurite listens on loopback, on free ports, with its
data in a temp folder, and is stopped at the end of the session. Tests that use the fixture are skipped with
a clear message only when Node.js is missing; a missing `node_modules` is installed with `npm install`.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.devhost.instances import free_port
from services.storage.connections import development_connection_string
from tests.support.node_tools import node_with, stop

REPO = Path(__file__).resolve().parent.parent
AZURITE = REPO / "node_modules" / ".bin" / "azurite"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Azurite:
    host: str
    ports: dict[str, int]

    @property
    def connection_string(self) -> str:
        """An explicit development-account connection string for this instance."""
        return development_connection_string(self.host, self.ports)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A running Azurite with blob, queue and table services; skipped only when Node.js is missing."""
    with running_azurite() as instance:
        yield instance


@contextmanager
def running_azurite(debug: Path | None = None) -> Iterator[Azurite]:
    """Start an Azurite of its own (an empty storage account), stop it on exit; skips when Node.js is missing.

    `debug`: a file where Azurite logs every request it serves (what `tests/support/azurite_requests.py` counts)."""
    node_with(AZURITE, "Azurite")
    ports = {"blob": free_port(), "queue": free_port(), "table": free_port()}
    workspace = tempfile.mkdtemp(prefix="azurite-")
    command = [
        str(AZURITE), "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--location", workspace,
        "--blobHost", "127.0.0.1", "--blobPort", str(ports["blob"]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports["queue"]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports["table"]),
        *(["--debug", str(debug)] if debug is not None else []),
    ]
    process = subprocess.Popen(command, cwd=workspace, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # Waiting for a child process to open its ports is real time by nature; the tests themselves never sleep.
        while not all(_listening(port) for port in ports.values()):
            if process.poll() is not None:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"Azurite exited with {process.returncode}: {stderr[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Azurite did not listen on {ports} within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        yield Azurite("127.0.0.1", ports)
    finally:
        stop(process)
        if process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(workspace, ignore_errors=True)
