"""`aos workflows start|show|raise|terminate` against a running `aos serve` (the real function_app)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cli.conftest import Aos


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _shown_until(aos: Aos, workflow_id: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while not done(shown := _json(aos("workflows", "show", workflow_id, "--json"))):
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)  # polling a subprocess host over HTTP
    return shown


def test_start_show_raise_and_terminate(aos: Aos, tmp_path: Path) -> None:
    definition = tmp_path / "wf.json"
    definition.write_text(json.dumps({"name": "count then wait", "steps": [
        {"name": "count", "action": "event", "input": {"type": "count.wf"}},
        {"name": "approval", "action": "wait", "input": {"event": "approved"}, "depends_on": ["count"]}]}))
    started = aos("workflows", "start", str(definition), "--id", "cli-wf-1")
    assert started.returncode == 0 and started.stdout.startswith("cli-wf-1: "), started.stderr
    _shown_until(aos, "cli-wf-1", lambda s: s["steps"]["approval"]["status"] == "running")
    table = aos("workflows", "show", "cli-wf-1").stdout
    assert re.search(r"^status:\s+running$", table, re.M) and re.search(r"^approval\s+running", table, re.M)
    assert "error:" not in table
    assert aos("workflows", "raise", "cli-wf-1", "approved", "--data", '{"by": "cli"}').returncode == 0
    done = _shown_until(aos, "cli-wf-1", lambda s: s["status"] == "completed")
    assert done["output"]["approval"] == {"by": "cli"}

    assert aos("workflows", "start", str(definition), "--id", "cli-wf-2").returncode == 0
    _shown_until(aos, "cli-wf-2", lambda s: s["status"] == "running")
    assert aos("workflows", "terminate", "cli-wf-2", "--reason", "changed plans").returncode == 0
    assert _shown_until(aos, "cli-wf-2", lambda s: s["status"] != "running")["status"] == "terminated"
    again = aos("workflows", "terminate", "cli-wf-2")
    assert again.returncode == 1 and "409" in again.stderr

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "steps": [{"name": "a", "action": "teleport"}]}))
    refused = aos("workflows", "start", str(bad))
    assert refused.returncode == 1 and "unknown step kind 'teleport'" in refused.stderr
    assert aos("workflows", "show", "nobody").returncode == 1
