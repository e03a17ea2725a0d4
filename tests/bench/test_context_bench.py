"""bench/context.py in smoke mode: it runs on the repo's own files and reports the metrics docs/benchmarks.md names."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support.host_process import ROOT


def test_the_context_bench_reports_both_rates_and_their_ratio() -> None:
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "context.py"), "--small"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600, check=True)
    lines = {line["metric"]: line for line in map(json.loads, run.stdout.splitlines())}
    assert set(lines) == {"events_per_s_context_1kb", "events_per_s_context_1mb", "context_rate_ratio",
                          "context_head_bytes_p50"}
    assert lines["events_per_s_context_1kb"]["value"] > 0 and lines["events_per_s_context_1mb"]["value"] > 0
    assert lines["context_head_bytes_p50"]["value"] < 100_000  # the head holds the log, never the 1 MB of notes
