"""Azure Storage requests per event, counted on Azurite. Prints one JSON line per metric; not a test (run by hand
or with --small in CI; `npm install` first for Azurite).

`aos serve` runs with AOS_STORAGE__BACKEND=azure against an Azurite started with `--debug <file>`, which logs
every request it serves. A live `tally` agent is sent direct messages over HTTP, one after the other, and the
requests they caused (the intake on the HTTP side and the agent's entity applying them) are counted per event:

  requests_per_message        POST /api/agents/{id}/messages (answered 202 while the entity applies it)
  requests_per_message_wait   the same with ?wait=10 (answered 200 once applied)

Each line has the counts per HTTP method (`methods`), per Storage operation (`operations`) and per kind of
document (`paths`). Storage bills per request and each is a network round trip; the target is <= 3 per event,
no container listing on the event path, and no polling for `?wait` on the instance that applies the event.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where bench/http.py would shadow the standard
# library's `http`; the repository root takes its place (tests.azurite and tests.support are there).
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

from tests.support.azurite_requests import Requests, measure_messages  # noqa: E402


def emit(metric: str, requests: Requests, events: int) -> None:
    per = {name: {k: round(v / events, 2) for k, v in sorted(counter.items())}
           for name, counter in (("methods", requests.methods), ("operations", requests.operations),
                                 ("paths", requests.paths))}
    print(json.dumps({"metric": metric, "value": round(requests.total / events, 2), "unit": "requests/event",
                      "events": events, **per}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="smoke mode: small N, for CI")
    args = parser.parse_args()
    events = 20 if args.small else 200
    with tempfile.TemporaryDirectory() as tmp:
        for metric, requests in measure_messages(Path(tmp), events).items():
            emit(metric, requests, events)


if __name__ == "__main__":
    main()
