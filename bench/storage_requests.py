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
from typing import Any

# Run as a script, this file's folder comes first on sys.path, where bench/http.py would shadow the standard
# library's `http`; the repository root takes its place (tests.azurite and tests.support are there).
REPO = Path(__file__).resolve().parent.parent
sys.path[0] = str(REPO)

import httpx  # noqa: E402

from tests.azurite import running_azurite  # noqa: E402
from tests.support.azurite_requests import RequestLog, Requests  # noqa: E402
from tests.support.host_process import KEY, HostProcess  # noqa: E402

AGENT_CONFIG = {"agents": {"instances": [{"type": "tally", "id": "t"}]}}


def emit(metric: str, requests: Requests, events: int) -> None:
    per = {name: {k: round(v / events, 2) for k, v in sorted(counter.items())}
           for name, counter in (("methods", requests.methods), ("operations", requests.operations),
                                 ("paths", requests.paths))}
    print(json.dumps({"metric": metric, "value": round(requests.total / events, 2), "unit": "requests/event",
                      "events": events, **per}), flush=True)


def count(log: RequestLog, http: httpx.Client, events: int, params: dict[str, Any], status: int) -> Requests:
    """The requests `events` direct messages to `t` cause, once the host is done with them."""
    log.settle()
    log.mark()
    for n in range(events):
        r = http.post("/api/agents/t/messages", params=params, json={"type": "bench.hit", "data": {"n": n}})
        assert r.status_code == status, r.text
    log.settle()
    return log.requests()


def measure(events: int) -> dict[str, Requests]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        debug = folder / "azurite-debug.log"
        with running_azurite(debug=debug) as azurite:
            settings = {"AOS_STORAGE__BACKEND": "azure", "AzureWebJobsStorage": azurite.connection_string}
            host = HostProcess(folder, settings, AGENT_CONFIG)
            host.start()
            try:
                with httpx.Client(base_url=host.base, headers={"x-functions-key": KEY}, timeout=30) as http:
                    for _ in range(5):  # the agent live, the containers made: what every later event finds
                        r = http.post("/api/agents/t/messages", params={"wait": 10}, json={"type": "bench.warm"})
                        assert r.status_code == 200, r.text
                    log = RequestLog(debug)
                    found = {"requests_per_message": count(log, http, events, {}, 202),
                             "requests_per_message_wait": count(log, http, events, {"wait": 10}, 200)}
                    total = http.get("/api/agents/t/context").json()["state"]["total"]
                    assert total == 5 + 2 * events, total
            finally:
                host.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="smoke mode: small N, for CI")
    args = parser.parse_args()
    events = 20 if args.small else 200
    for metric, requests in measure(events).items():
        emit(metric, requests, events)


if __name__ == "__main__":
    main()
