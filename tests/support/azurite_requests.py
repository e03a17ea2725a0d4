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

_REQUEST = re.compile(r" ([0-9a-f-]{36}) info: \w+: RequestMethod=(\w+) RequestURL=(\S+)")
_OPERATION = re.compile(r" ([0-9a-f-]{36}) info: DispatchMiddleware: Operation=(\w+)")


@dataclass
class Requests:
    """What one stretch of the log holds: requests by HTTP method, by operation and by path."""

    methods: Counter[str] = field(default_factory=Counter)
    operations: Counter[str] = field(default_factory=Counter)
    paths: Counter[str] = field(default_factory=Counter)

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
