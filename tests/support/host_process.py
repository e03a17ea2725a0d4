"""`aos serve` as a subprocess on a free port, used over real HTTP like a user would (tests/e2e, tests/cli).

`make_host` (a pytest plugin fixture, registered in tests/conftest.py) builds hosts in the test's folder and
stops them afterwards; `HostProcess` can also be built directly for a host shared by a module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.devhost.instances import free_port

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-function-key"
MASTER_KEY = "e2e-master-key"
ADMIN = {"x-functions-key": MASTER_KEY}  # headers for the host's own routes (/admin, topic posting)


class HostProcess:
    """One `aos serve` of the real function_app, with its own data folder, settings and config."""

    def __init__(self, tmp: Path, settings: dict[str, str], config: dict[str, Any] | None, *,
                 python: Path | str = sys.executable, app_dir: Path = ROOT, instances: int = 1,
                 app: str = "function_app:app") -> None:
        """`config` None: the app's own `config/` (as deployed); `python` and `app_dir`: another install of it;
        `instances`: worker processes behind the port (`aos serve --instances`); `app`: another function app
        (module:attribute, importable from `app_dir`)."""
        self.instances = instances
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.data = tmp / "data"
        self.log = tmp / "host.log"
        self.python, self.app_dir, self.app = str(python), app_dir, app
        values = json.loads((ROOT / "local.settings.json.example").read_text())["Values"]
        values.update(settings)
        self.settings_file = tmp / "local.settings.json"
        self.settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
        self.env.update({"AOS_DEVHOST__FUNCTION_KEY": KEY, "AOS_DEVHOST__MASTER_KEY": MASTER_KEY, **settings})
        if config is not None:
            config_dir = tmp / "config"
            config_dir.mkdir(exist_ok=True)
            (config_dir / "aos.json").write_text(json.dumps(config))
            self.env["AOS_CONFIG_DIR"] = str(config_dir)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [self.python, "-m", "services.cli", "serve", "--port", str(self.port), "--data",
               str(self.data), "--settings", str(self.settings_file), "--log-level", "warning",
               "--instances", str(self.instances), "--app", self.app]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=self.app_dir, env=self.env, stdout=log, stderr=subprocess.STDOUT)
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

    def make(settings: dict[str, str] | None = None, config: dict[str, Any] | None = None, *,
             instances: int = 1) -> HostProcess:
        host = HostProcess(tmp_path, settings or {}, config or {}, instances=instances)
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()
