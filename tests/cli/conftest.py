"""The `aos` command as a user runs it: a subprocess, against one `aos serve` subprocess per test module."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.host_process import KEY, ROOT, HostProcess

TALLY_CONFIG = {"agents": {"instances": [{"type": "tally", "id": "counter", "config": {"subscribe": ["count.*"]}}]}}


def cli_env(**extra: str) -> dict[str, str]:
    """The caller's environment without AOS_* settings, so only what a test passes reaches the command."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env["PYTHONPATH"] = str(ROOT)  # for runs from another folder
    return env | extra


def run_aos(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT, stdin: Any = subprocess.DEVNULL,
            stderr: Any = subprocess.PIPE, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=cwd, env=env or cli_env(),
                          stdin=stdin, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=timeout)


@dataclass
class Aos:
    """`aos ...` pointed at the module's host (AOS_URL and AOS_KEY), with what it printed and its exit status."""

    host: HostProcess

    def __call__(self, *args: str, key: str | None = KEY, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = cli_env(AOS_URL=self.host.base, **({"AOS_KEY": key} if key else {}))
        return run_aos(*args, env=env, **kwargs)


@pytest.fixture(scope="module")
def aos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Aos]:
    host = HostProcess(tmp_path_factory.mktemp("cli-host"), {}, TALLY_CONFIG)
    host.start()
    try:
        yield Aos(host)
    finally:
        host.stop()
