from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from services.devhost.index import index_functions
from services.devhost.instances import free_port
from services.devhost.server import DevHost
from services.devhost.settings import HostSettings

FUNCTION_KEY, MASTER_KEY = "test-function-key", "test-master-key"
ADMIN = {"x-functions-key": MASTER_KEY}  # headers for the host's own routes (/admin, topic posting)


@dataclass
class Running:
    host: DevHost
    calls: Any
    base: str

    def client(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=10, headers=headers)


class ServerThread:
    """A real uvicorn serving an ASGI app (a host's, or a front door) on its own thread and event loop, as
    `aos serve` runs it."""

    def __init__(self, app: Any, port: int, host: str = "127.0.0.1") -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the host did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def sample_settings(tmp_path: Path, **overrides: Any) -> HostSettings:
    return HostSettings(app_dir=tmp_path, data_dir=tmp_path / "data", port=free_port(), function_key=FUNCTION_KEY,
                        master_key=MASTER_KEY, max_delivery_count=3, max_concurrent_calls=2, **overrides)


@pytest.fixture
def sample_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLE_SCHEDULE", "0 0 0 1 1 *")  # once a year: timers are tested with a ManualClock
    monkeypatch.setenv("SAMPLE_TOPIC", "sample.events")


@pytest.fixture
def running(tmp_path: Path, sample_env: None) -> Iterator[Running]:
    from tests.services.devhost.apps.sample_app import build_app

    app, calls = build_app()
    host = DevHost(index_functions(app), sample_settings(tmp_path))
    with ServerThread(host.app, host.settings.port, host.settings.host):
        yield Running(host, calls, host.settings.base_url)


async def until(condition: Any, within: float = 10.0) -> None:
    """Wait for work another thread does (a bus receiver, an entity batch); fails after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
