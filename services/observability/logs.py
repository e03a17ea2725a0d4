"""Structured JSON logs carrying the trace id, span id and correlation id of the work being done.

`configure_logging()` installs `JsonFormatter` on the root logger; `correlation(event.correlationid)` marks
everything logged inside the block. One JSON object per line is what Application Insights and `jq` read.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from services.observability.tracing import trace_ids

_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("aos_correlation_id", default=None)
# LogRecord attributes that are not "extra" fields.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Tag every log record written inside the block with `correlation_id`."""
    token = _correlation.set(correlation_id)
    try:
        yield
    finally:
        _correlation.reset(token)


def current_correlation_id() -> str | None:
    return _correlation.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, trace_id, span_id, correlation_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = trace_ids()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if trace_id:
            out["trace_id"], out["span_id"] = trace_id, span_id
        if (cid := _correlation.get()) is not None:
            out["correlation_id"] = cid
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_logging(level: int | str = logging.INFO, *, logger: logging.Logger | None = None,
                      handler: logging.Handler | None = None) -> logging.Handler:
    """Send `logger` (default: root) records as JSON lines through `handler` (default: stderr); idempotent."""
    target = logger or logging.getLogger()
    for existing in target.handlers:
        if getattr(existing, "_aos_json", False):
            return existing
    chosen = handler or logging.StreamHandler()
    chosen.setFormatter(JsonFormatter())
    chosen._aos_json = True  # type: ignore[attr-defined]
    target.addHandler(chosen)
    target.setLevel(level)
    return chosen
