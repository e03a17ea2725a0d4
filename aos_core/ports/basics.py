"""Values and services every port uses: JSON values, the clock, ids, and telemetry."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aos_core.events import Event

JSON = Any  # a value json.dumps accepts: dict, list, str, int, float, bool or None


# --- time and ids -------------------------------------------------------------------------------


@runtime_checkable
class Clock(Protocol):
    """Where the kernel gets time. Tests use `aos_core.testing.ManualClock` instead of sleeping."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and idle tracking)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class IdFactory(Protocol):
    def new_id(self) -> str:
        """A new unique id (uuid4 text by default)."""
        ...



# --- telemetry ----------------------------------------------------------------------------------


class Telemetry(Protocol):
    """Spans and metrics for the kernel (services.observability on OpenTelemetry; a no-op by default)."""

    def span(self, name: str, *, parent: str | None = None, **attributes: Any) -> AbstractContextManager[Any]:
        """A span around a block, child of the current span or of the W3C `parent` traceparent."""
        ...

    def event_span(self, name: str, event: Event, **attributes: Any) -> AbstractContextManager[Any]:
        """A span about `event`, continuing the trace in `event.traceparent` when no span is current."""
        ...

    def inject(self, event: Event) -> Event:
        """`event` carrying the current span's traceparent."""
        ...

    def increment(self, name: str, n: int = 1, **attributes: Any) -> None: ...

    def histogram(self, name: str, value: float, **attributes: Any) -> None: ...
