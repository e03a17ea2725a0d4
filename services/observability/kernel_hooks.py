"""The kernel's Telemetry port on OpenTelemetry: spans through `tracing`, counters and histograms through `metrics`."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from aos_core.events import Event
from services.observability import metrics, tracing


class OpenTelemetryHooks:
    """What `aos_core.runtime.build_telemetry` gives a hosted kernel; exports go where `configure_telemetry` says."""

    def span(self, name: str, *, parent: str | None = None, **attributes: Any) -> AbstractContextManager[Any]:
        return tracing.span(name, parent=parent, **attributes)

    def event_span(self, name: str, event: Event, **attributes: Any) -> AbstractContextManager[Any]:
        return tracing.event_span(name, event, **attributes)

    def inject(self, event: Event) -> Event:
        return tracing.inject(event)

    def increment(self, name: str, n: int = 1, **attributes: Any) -> None:
        metrics.increment(name, n, **attributes)

    def histogram(self, name: str, value: float, **attributes: Any) -> None:
        metrics.histogram(name, value, **attributes)
