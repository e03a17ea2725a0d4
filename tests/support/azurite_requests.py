"""Storage requests counted from Azurite's debug log (`azurite --debug <file>`), as Azure Storage would bill them.

Azurite logs each request it serves under a request id: a `RequestMethod=... RequestURL=...` line, then the
operation it dispatched to (`Operation=BlockBlob_Upload`). `RequestLog` reads the lines appended since a mark, so
a bench or a test counts exactly the requests made by what it did in between; `settle` waits until the app has
stopped making requests (work handed to a Durable entity finishes after the HTTP answer).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.azurite import running_azurite
from tests.support.host_process import KEY, HostProcess

AGENT_CONFIG = {"agents": {"instances": [{"type": "tally", "id": "t"}]}}

_REQUEST = re.compile(r" ([0-9a-f-]{36}) info: \w+: RequestMethod=(\w+) RequestURL=(\S+)")
_OPERATION = re.compile(r" ([0-9a-f-]{36}) info: DispatchMiddleware: Operation=(\w+)")


@dataclass
class Requests:
    """What one stretch of the log holds: requests by HTTP method, by operation and by path."""

    methods: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)
    writes: Counter[str] = field(default_factory=Counter)  # PUT requests by path

    @property
    def total(self) -> int:
        return sum(self.methods.values())


class RequestLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mark = 0

    def mark(self) -> None:
        """Count only requests logged from now on."""
        self._mark = self.path.stat().st_size if self.path.exists() else 0

    def settle(self, quiet: float = 1.5, limit: float = 60.0) -> None:
        """Wait until the log has not grown for `quiet` seconds (the app is done with storage)."""
        deadline = time.monotonic() + limit
        size, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.path.stat().st_size if self.path.exists() else 0
            if now != size:
                size, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)  # watching another process's file: real time by nature

    def requests(self) -> Requests:
        """The requests logged since the mark."""
        with self.path.open("rb") as log:
            log.seek(self._mark)
            text = log.read().decode("utf-8", errors="replace")
        found = Requests()
        for match in _REQUEST.finditer(text):
            found.methods[match.group(2)] += 1
            found.paths[_shape(match.group(3))] += 1
            if match.group(2) == "PUT":
                found.writes[_shape(match.group(3))] += 1
        for match in _OPERATION.finditer(text):
            found.operations[match.group(2)] += 1
        return found


def _shape(url: str) -> str:
    # `.../aos-state/events/<id>/results/t` -> `events/*/results/*`: the kind of document, not its name.
    path, _, query = url.partition("?")
    parts = path.split("/")[4:]  # after http:, '', host, account
    if not parts or not parts[0]:
        return "(account)"
    if len(parts) == 1:
        return f"{parts[0]} (container{', list' if 'comp=list' in query else ''})"
    keep = {"events", "results", "context", "registry", "agents", "snapshots", "memory", "handover", "health"}
    return "/".join(p if p in keep else "*" for p in parts[1:])


def measure_messages(folder: Path, events: int) -> dict[str, Requests]:
    """The requests `events` direct messages to a live `tally` cost on Azurite, without and with `?wait=10`.

    `aos serve` runs with AOS_STORAGE__BACKEND=azure on an Azurite of its own; five messages first make the agent
    live and the containers exist, as every later event finds them."""
    folder.mkdir(parents=True, exist_ok=True)
    debug = folder / "azurite-debug.log"
    with running_azurite(debug=debug) as azurite:
        settings = {"AOS_STORAGE__BACKEND": "azure", "AzureWebJobsStorage": azurite.connection_string}
        host = HostProcess(folder, settings, AGENT_CONFIG)
        host.start()
        try:
            with httpx.Client(base_url=host.base, headers={"x-functions-key": KEY}, timeout=120) as http:
                for _ in range(5):
                    r = http.post("/api/agents/t/messages", params={"wait": 10}, json={"type": "warm"})
                    assert r.status_code == 200, r.text
                log = RequestLog(debug)
                found = {"requests_per_message": _count(log, http, events, {}, 202),
                         "requests_per_message_wait": _count(log, http, events, {"wait": 10}, 200)}
                total = http.get("/api/agents/t/context").json()["state"]["total"]
                assert total == 5 + 2 * events, total
        finally:
            host.stop()
    return found


def _count(log: RequestLog, http: httpx.Client, events: int, params: dict[str, Any], status: int) -> Requests:
    log.settle()
    log.mark()
    for n in range(events):
        r = http.post("/api/agents/t/messages", params=params, json={"type": "hit", "data": {"n": n}})
        assert r.status_code == status, r.text
    log.settle()
    return log.requests()
