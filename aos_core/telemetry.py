"""The kernel's telemetry when none is configured: spans and metrics that cost nothing.

The composition root (`aos_core.runtime.build_telemetry`) swaps in the OpenTelemetry hooks from
`services.observability`; aos_core itself never imports OpenTelemetry.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from aos_core.events import Event

# Span names shared by the kernel, the entity and function_app (services.observability.tracing uses the same).
SPAN_HTTP = "aos.http"
SPAN_TRIGGER = "aos.trigger"
SPAN_PROCESS = "aos.kernel.process_event"
SPAN_ENTITY = "aos.entity.deliver"
SPAN_HANDLER = "aos.agent.handle"
SPAN_PUBLISH = "aos.bus.publish"
# Metric names.
EVENTS_PROCESSED = "aos.events.processed"
EVENTS_FAILED = "aos.events.failed"
HANDLING_DURATION = "aos.events.duration"
LOOP_BLOCKED = "aos.kernel.loop_blocked"  # a handler held the kernel loop past dispatch.block_threshold


class NoTelemetry:
    """The Telemetry port doing nothing."""

    def span(self, name: str, *, parent: str | None = None, **attributes: Any) -> AbstractContextManager[Any]:
        return nullcontext()

    def event_span(self, name: str, event: Event, **attributes: Any) -> AbstractContextManager[Any]:
        return nullcontext()

    def inject(self, event: Event) -> Event:
        return event

    def increment(self, name: str, n: int = 1, **attributes: Any) -> None:
        return None

    def histogram(self, name: str, value: float, **attributes: Any) -> None:
        return None
