"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against `/api/mcp` of `aos serve`.

One run per protocol version the server negotiates. The suite's own expected-failures baseline
(`mcp-conformance-baseline.yml`, next to this file) lists the scenarios of capabilities AOS does not offer, with
the reason; any other failing check, and any listed entry that passes, fails the run.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.host_process import KEY, ROOT, HostProcess

SUITE = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE = ROOT / "node_modules" / ".bin" / "node"  # Node.js 22 from npm (package.json): the suite needs >= 22
BASELINE = Path(__file__).with_name("mcp-conformance-baseline.yml")
RUNS = {  # protocol version -> how the suite selects its scenarios
    "2025-06-18": ["--spec-version", "2025-06-18"],
    "2025-11-25": ["--requirements", "2025-11-25"],
    "2026-07-28": ["--requirements", "2026-07-28"],
}
CONFIG = {"agents": {"instances": [
    {"type": "tally", "id": "orders", "config": {"subscribe": ["order.*"]}},
    {"type": "cfo", "id": "cfo", "config": {"budgets": {"product": 1000}}},
]}}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not SUITE.exists() or not NODE.exists():
        pytest.fail("the MCP conformance suite or Node.js 22 is missing: run `npm install` (make test does)")
    started = HostProcess(tmp_path_factory.mktemp("conformance"), {}, CONFIG)
    started.start()
    yield started
    started.stop()


def baseline_for(version: str, folder: Path) -> Path:
    """The baseline without the entries that `only_at` confines to other versions (the suite would call them
    stale where they pass)."""
    spec = yaml.safe_load(BASELINE.read_text())
    only_at: dict[str, list[str]] = spec.get("only_at") or {}
    entries = [e for e in spec["server"] if version in only_at.get(e, [version])]
    path = folder / f"baseline-{version}.yml"
    path.write_text(yaml.safe_dump({"server": entries}))
    return path


@pytest.mark.parametrize("version", list(RUNS))
def test_the_conformance_suite_passes_for_what_the_server_offers(host: HostProcess, version: str,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "results"
    run = subprocess.run(
        [str(NODE), str(SUITE), "server", "--url", f"{host.base}/api/mcp?code={KEY}", *RUNS[version],
         "--expected-failures", str(baseline_for(version, tmp_path)), "--output-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = run.stdout[run.stdout.find("=== SUMMARY ==="):] or run.stdout[-4000:]
    assert run.returncode == 0, f"conformance at {version} failed:\n{report}\n{run.stderr[-2000:]}"
    checks = [c for f in out.glob("*/checks.json") for c in json.loads(f.read_text())]
    passed = {c["id"] for c in checks if c["status"] == "SUCCESS"}
    # The run really exercised the server: the core checks of this version are among those that passed.
    core = {"tools-list", "resources-list", "prompts-list"} | (
        {"sep-2575-server-implements-discover", "sep-2575-discover-capabilities-match-handlers",
         "localhost-host-rebinding-rejected"} if version == "2026-07-28" else {"server-initialize", "ping"})
    assert core <= passed, f"missing {sorted(core - passed)}\n{report}"
