"""Instructions per event, counted by valgrind: a figure that does not move with the load of a shared machine.

Wall-clock and CPU-time rates on a machine shared with other work move by a third from run to run, more than most
changes to the event path are worth. Counting the instructions the process executes does not: the same code gives
the same in-memory count within ~0.1%. The committed count moves by up to ~7% (the storage thread groups commits
as timing allows), so compare a few runs there. Compare two versions of the code with this, and measure their
speed with `bench/dispatch.py`.

  instructions_per_event_memory     `bench/dispatch.py`'s in-memory round (routed to 500 tally agents, batches of
                                    100 through `submit_many`, state kept in memory)
  instructions_per_event_committed  its committed round (record, audit entry, policy, each agent's state committed
                                    to SQLite with `synchronous=FULL` before the event is acknowledged)

Each figure is (count with 3,000 events - count with 1,000) / 2,000, so start-up, imports and warming cancel out.
Needs valgrind (Debian/Ubuntu: `apt-get install valgrind`); each figure takes about a minute. Not a test.

  --via process_event   each event submitted alone through `process_event` instead of in batches of 100
  --code DIR            count the kernel of another checkout of this project with these same rounds, e.g. an older
                        commit: `git worktree add ../aos-old <commit>`, then `--code ../aos-old` (its packages are
                        imported instead of these; the rounds and this environment's libraries stay)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENTS = 500
ROUNDS = ("memory", "committed")  # bench/dispatch.py's ROUNDS, imported only in the counted run (--code)


def count(round_name: str, events: int, via: str, code: Path) -> int:
    """Instructions of one run of this script's `--run` mode under cachegrind (no cache simulation)."""
    out = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                          sys.executable, __file__, "--run", round_name, str(events), "--via", via,
                          "--code", str(code)],
                         capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"I\s+refs:\s+([\d,]+)", out.stderr)
    if out.returncode != 0 or found is None:
        raise RuntimeError(f"the counted run failed or printed no count:\n{out.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def run(round_name: str, events: int, via: str, code: Path) -> None:
    sys.path[:0] = [str(code), str(ROOT / "bench")]  # the counted kernel, then these rounds
    import dispatch

    async def main() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            await dispatch.throughput(Path(tmp), agents=AGENTS, events=events, via=via,
                                      **dispatch.ROUNDS[round_name])

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", nargs="+", choices=ROUNDS, default=list(ROUNDS))
    parser.add_argument("--via", choices=["submit_many", "process_event"], default="submit_many")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose kernel is counted")
    parser.add_argument("--run", nargs=2, metavar=("ROUND", "EVENTS"), help=argparse.SUPPRESS)  # under valgrind
    args = parser.parse_args()
    code = args.code.resolve()
    if args.run:
        run(args.run[0], int(args.run[1]), args.via, code)
        return
    if shutil.which("valgrind") is None:
        sys.exit("bench/instructions.py counts with valgrind, which is not installed (apt-get install valgrind)")
    revision = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True, text=True)
    for round_name in args.rounds:
        per_event = (count(round_name, 3000, args.via, code) - count(round_name, 1000, args.via, code)) / 2000
        print(json.dumps({"metric": f"instructions_per_event_{round_name}", "value": round(per_event),
                          "unit": "instructions/event", "agents": AGENTS, "via": args.via,
                          "code": revision.stdout.strip() or str(code)}), flush=True)


if __name__ == "__main__":
    main()
