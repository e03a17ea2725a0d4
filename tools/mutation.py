"""`make mutation`: mutmut over the security and delivery core, one score line per module and the total.

The modules and the tests that exercise them are `[tool.mutmut]` in pyproject.toml; mutmut runs each mutant
against the tests that call the function it changed. A mutant counts as killed when a test failed or timed out
on it; every other verdict (survived, no test reached it, suspicious) counts against the score, message-only and
equivalent mutants included. Each module must reach `--min` percent; the few survivors accepted anyway are
listed with their reason in docs/mutation-survivors.md.

    python -m tools.mutation [--min 90] [--no-run]   # --no-run: score the last run's results again
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255}  # mutmut's exit codes for "killed" and "timeout"


def modules(root: Path) -> list[str]:
    return list(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"])


def score(root: Path, module: str) -> tuple[int, int]:
    """(killed, total) for one module, from the results mutmut keeps beside its mutated copy."""
    meta = root / "mutants" / f"{module}.meta"
    if not meta.exists():
        return 0, 0
    codes = json.loads(meta.read_text())["exit_code_by_key"].values()
    return sum(code in KILLED for code in codes), len(codes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=90.0, help="the lowest score a module may have, in percent")
    parser.add_argument("--no-run", action="store_true", help="score the results of the last run")
    args = parser.parse_args(argv)
    root = Path.cwd()
    if not args.no_run:
        mutmut = Path(sys.executable).with_name("mutmut")
        # mutmut resumes a run and keeps its verdicts (and its map of tests) whatever changed since: start afresh.
        shutil.rmtree(root / "mutants", ignore_errors=True)
        (root / "mutants").mkdir()
        # Its progress line redraws thousands of times: keep it in a log, not on the terminal.
        with (root / "mutants" / "run.log").open("w") as log:
            subprocess.run([str(mutmut), "run"], cwd=root, stdout=log, stderr=subprocess.STDOUT, check=False)
    killed_all = total_all = 0
    failing = []
    for module in modules(root):
        killed, total = score(root, module)
        percent = 100.0 * killed / total if total else 0.0
        killed_all, total_all = killed_all + killed, total_all + total
        if percent < args.min:
            failing.append(module)
        print(f"{module:32} {killed:4}/{total:<4} killed  {percent:5.1f}%")
    percent = 100.0 * killed_all / total_all if total_all else 0.0
    print(f"{'total':32} {killed_all:4}/{total_all:<4} killed  {percent:5.1f}%")
    if failing:
        print(f"below {args.min:g}%: {', '.join(failing)} (`.venv/bin/mutmut results` lists the survivors, "
              "`.venv/bin/mutmut show <name>` shows one)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
