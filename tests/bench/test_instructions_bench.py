"""bench/instructions.py's measured part (what valgrind runs) on the repo's own files: both rounds run to the end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.host_process import ROOT


@pytest.mark.parametrize("via", ["submit_many", "process_event"])
@pytest.mark.parametrize("round_name", ["memory", "committed"])
def test_the_counted_round_runs(round_name: str, via: str) -> None:
    done = subprocess.run([sys.executable, "bench/instructions.py", "--run", round_name, "200", "--via", via],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
