from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Hypothesis fails an example slower than 200 ms by default; on a loaded machine that measures the load and the
# tests that ran before (warm caches or not), not the code. No test here asserts speed through it.
settings.register_profile("aos", deadline=None)
settings.load_profile("aos")

pytest_plugins = [
    "tests.azurite",  # the session-scoped `azurite` fixture
    "tests.cosmosdb",  # the session-scoped `cosmosdb` fixture (a local Cosmos DB server)
    "tests.support.function_calls",  # `durable` and `warm_kernel` for the function_app tests
    "tests.support.spans",  # `span_exporter`: OpenTelemetry spans in memory
    "tests.support.host_process",  # `make_host`: `aos serve` subprocesses (tests/e2e, tests/cli)
]


@pytest.fixture(autouse=True)
def _isolated_aos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty config folder and its own data folder, whatever the developer's shell has."""
    import os

    for name in list(os.environ):
        if name.startswith("AOS_"):
            monkeypatch.delenv(name)
    empty = tmp_path / "no-config"
    empty.mkdir()
    monkeypatch.setenv("AOS_CONFIG_DIR", str(empty))
    monkeypatch.setenv("AOS_DATA_DIR", str(tmp_path / "data"))
    # The test process warms one kernel after another: frozen out of the garbage collector (what a hosting process
    # does once, aos_core/gc_tuning.py), each one's objects would stay for good. Hosts started as processes
    # (tests/support/host_process.py) run with the default, as deployed.
    monkeypatch.setenv("AOS_DISPATCH__GC_THRESHOLD", "0")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The suite runs in a random order (pytest-randomly); say how to replay this one, even under -q."""
    seed = getattr(config.option, "randomly_seed", None)
    if isinstance(seed, int) and getattr(config.option, "randomly_reorganize", False):
        terminalreporter.write_line(f"random order: seed {seed}; replay it with "
                                    f"make test PYTEST_ARGS=\"--randomly-seed={seed}\"")
