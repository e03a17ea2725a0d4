"""End-to-end tests: `aos serve` as a subprocess on a free port, used over real HTTP like a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-function-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HostProcess:
    """One `aos serve` of the real function_app, with its own data folder, settings and config."""

    def __init__(self, tmp: Path, settings: dict[str, str], config: dict[str, Any]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = tmp / "data"
        self.log = tmp / "host.log"
        config_dir = tmp / "config"
        config_dir.mkdir(exist_ok=True)
        (config_dir / "aos.json").write_text(json.dumps(config))
        values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
        values.update(settings)
        self.settings_file = tmp / "local.settings.json"
        self.settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
        self.env.update({"AOS_CONFIG_DIR": str(config_dir), "AOS_DEVHOST__FUNCTION_KEY": KEY, **settings})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "services.devhost.cli", "serve", "--port", str(self.port), "--data",
               str(self.data), "--settings", str(self.settings_file), "--log-level", "warning"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aos serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)  # waiting for a subprocess to listen, not for time-based behaviour
        raise RuntimeError(f"aos serve did not answer in 60 s:\n{self.log.read_text()}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, headers={"x-functions-key": KEY}, timeout=30,
                                 limits=httpx.Limits(max_connections=32))


@pytest.fixture
def make_host(tmp_path: Path) -> Iterator[Any]:
    hosts: list[HostProcess] = []

    def make(settings: dict[str, str] | None = None, config: dict[str, Any] | None = None) -> HostProcess:
        host = HostProcess(tmp_path, settings or {}, config or {})
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture(scope="module")
def in_process_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """function_app on the local host inside the test process (uvicorn on a free port); its base URL.

    Entity signals go through the real Durable client to the host's own webhooks; the function key is
    `tests.services.devhost.conftest.FUNCTION_KEY`.
    """
    from aos_core import runtime
    from services.devhost.server import DevHost
    from services.devhost.settings import HostSettings
    from tests.services.devhost.conftest import FUNCTION_KEY, MASTER_KEY, ServerThread
    from tests.support.function_calls import indexed_function_app

    folder = tmp_path_factory.mktemp("host")
    env = {"AOS_DATA_DIR": str(folder / "data"), "AOS_CONFIG_DIR": str(folder), "AOS_EVENTS_TOPIC": "agent.events",
           "AOS_EVENTS_SUBSCRIPTION": "aos-runtime", "AOS_MESSAGES_TOPIC": "agent.messages",
           "AOS_MESSAGES_SUBSCRIPTION": "aos-runtime", "AOS_TICK_SCHEDULE": "0 0 0 1 1 *"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        runtime.reset_aos()
        settings = HostSettings(app_dir=Path.cwd(), data_dir=folder / "data", port=free_port(),
                                function_key=FUNCTION_KEY, master_key=MASTER_KEY)
        host = DevHost(indexed_function_app(), settings)
        with ServerThread(host):
            yield host.settings.base_url
        runtime.reset_aos()
