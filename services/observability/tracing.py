"""Spans and W3C trace context for AOS: one trace per event, from trigger to kernel to entity to agent.

The trace context travels with the event itself (`Event.traceparent`) and, on Service Bus, in the message's
`traceparent` application property, so a span started where the event is received continues the trace of
the code that sent it. Uses the OpenTelemetry API only; what is exported is decided once by
`configure_telemetry` (without it, spans are no-ops). Tests install their own provider with
`use_tracer_provider` instead of the process-global one, which can only be set once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from aos_core.events import Event
from aos_core.telemetry import (  # noqa: F401  (the span names live with the kernel, re-exported here)
    SPAN_ENTITY,
    SPAN_HANDLER,
    SPAN_HTTP,
    SPAN_PROCESS,
    SPAN_PUBLISH,
    SPAN_TRIGGER,
)

TRACER_NAME = "aos"
_propagator = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
# What `trace.get_tracer_provider()` is until a provider is configured: every span from it is a no-op.
_NO_OP_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
# The process-global provider as last looked up. Looking it up reads the environment each time until one is set
# (a few microseconds, a tenth of a health request), and the API lets it be set only once: so once a real one is
# seen it is kept, and before that it is looked up again at most every _RECHECK seconds (`refresh` at once).
_RECHECK = 1.0
_global: TracerProvider | None = None
_global_until = 0.0



def use_tracer_provider(provider: TracerProvider | None) -> None:
    """Spans go to `provider` (tests: an SDK provider with InMemorySpanExporter); None: the global one."""
    global _provider
    _provider = provider


def refresh() -> None:
    """Look the process-global provider up again on the next span (`configure_telemetry` has just set one)."""
    global _global
    _global = None


def _current_provider() -> TracerProvider:
    global _global, _global_until
    if _provider is not None:
        return _provider
    if _global is None or (_global_until and time.monotonic() >= _global_until):
        _global = trace.get_tracer_provider()
        _global_until = time.monotonic() + _RECHECK if isinstance(_global, _NO_OP_PROVIDERS) else 0.0
    return _global


def tracer() -> trace.Tracer:
    return _current_provider().get_tracer(TRACER_NAME)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    # OpenTelemetry accepts str, bool, int, float and sequences of them; anything else is shown as text.
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        out[key] = value if isinstance(value, str | bool | int | float) else str(value)
    return out


def span(name: str, *, parent: Event | Mapping[str, Any] | str | None = None, kind: SpanKind = SpanKind.INTERNAL,
         **attributes: Any) -> AbstractContextManager[Span]:
    """A span around the block, child of the current span, or of `parent` (an Event, carrier or traceparent).

    An exception escaping the block is recorded on the span and marks it as an error, then re-raised.
    """
    provider = _current_provider()
    if parent is None and isinstance(provider, _NO_OP_PROVIDERS):
        return nullcontext(trace.get_current_span())  # nothing to record and no context to carry on
    return _span(provider, name, parent, kind, attributes)


@contextmanager
def _span(provider: TracerProvider, name: str, parent: Event | Mapping[str, Any] | str | None, kind: SpanKind,
          attributes: Mapping[str, Any]) -> Iterator[Span]:
    ctx = extract(parent) if parent is not None else None
    if isinstance(provider, _NO_OP_PROVIDERS):
        # Nothing would record it: skip the API's layers of no-op spans (the bulk of a health request's cost) and
        # only carry the parent's context on, as its no-op tracer does, so events sent inside keep the trace.
        token = otel_context.attach(ctx) if ctx is not None else None
        try:
            yield trace.get_current_span()
        finally:
            if token is not None:
                otel_context.detach(token)
        return
    with provider.get_tracer(TRACER_NAME).start_as_current_span(
            name, context=ctx, kind=kind, attributes=_clean(attributes), record_exception=True,
            set_status_on_exception=True) as current:
        yield current


def event_attributes(event: Event) -> dict[str, Any]:
    """The attributes every span about one event carries (CloudEvents semantic conventions)."""
    return {"cloudevents.event_id": event.id, "cloudevents.event_type": event.type,
            "cloudevents.event_source": event.source, "cloudevents.event_subject": event.subject,
            "aos.correlation_id": event.correlationid}


@contextmanager
def event_span(name: str, event: Event, *, kind: SpanKind = SpanKind.INTERNAL, **attributes: Any) -> Iterator[Span]:
    """A span about `event`: continues the trace in `event.traceparent` unless a span is already current."""
    current = trace.get_current_span().get_span_context()
    parent = event if not current.is_valid and event.traceparent else None
    with span(name, parent=parent, kind=kind, **attributes) as current_span:
        if current_span.is_recording():
            current_span.set_attributes(_clean(event_attributes(event)))
        yield current_span


def mark_error(current: Span, message: str) -> None:
    """Mark a span failed without an exception (a handler that returned a failure)."""
    current.set_status(Status(StatusCode.ERROR, message))


# --- W3C traceparent ---------------------------------------------------------------------------


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, or None when no span is recording."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def inject(event: Event) -> Event:
    """`event` carrying the current span's traceparent (unchanged when there is no current span)."""
    traceparent = current_traceparent()
    if traceparent is None or traceparent == event.traceparent:
        return event
    return event.model_copy(update={"traceparent": traceparent})


def inject_properties(properties: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Add the current `traceparent` (and `tracestate`) to Service Bus application properties; returns them."""
    _propagator.inject(properties)
    return properties


def extract(source: Event | Mapping[str, Any] | str | None) -> otel_context.Context:
    """The context to parent a span on: from an Event, a carrier (message properties, HTTP headers) or a string."""
    if source is None:
        return otel_context.Context()
    if isinstance(source, Event):
        carrier: Mapping[str, Any] = {"traceparent": source.traceparent} if source.traceparent else {}
    elif isinstance(source, str):
        carrier = {"traceparent": source}
    else:
        # Service Bus hands properties with bytes keys and values; HTTP headers vary in case.
        carrier = {(k.decode() if isinstance(k, bytes) else str(k)).lower():
                   (v.decode() if isinstance(v, bytes) else str(v)) for k, v in source.items()}
    return _propagator.extract(carrier, context=otel_context.Context())


def trace_ids() -> tuple[str | None, str | None]:
    """(trace id, span id) of the current span as hex, for logs; (None, None) outside a span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
