"""Trace context across the AOS hops with the real OpenTelemetry SDK and its in-memory exporter."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from aos_core.events import Event
from services.messaging.cloudevents_amqp import TRACEPARENT_PROPERTY, application_properties, event_from_message
from services.observability import tracing


def test_one_trace_from_http_to_handler_and_into_the_published_message(span_exporter: InMemorySpanExporter) -> None:
    incoming = Event(type="order.created", data={"n": 1}, correlationid="conv-1")
    with tracing.span(tracing.SPAN_HTTP, kind=SpanKind.SERVER, **{"http.route": "/api/events"}):
        event = tracing.inject(incoming)  # the trigger stamps the event before handing it on
    assert event.traceparent is not None and incoming.traceparent is None
    # The kernel, entity and handler may run later, elsewhere: they continue from the event.
    with tracing.event_span(tracing.SPAN_PROCESS, event), tracing.span(tracing.SPAN_ENTITY, agent="cfo"):
        with tracing.span(tracing.SPAN_HANDLER, agent="cfo"):
            reply = tracing.inject(Event(type="budget.reviewed", correlationid=event.correlationid))
            props = application_properties(reply)
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    assert set(spans) == {tracing.SPAN_HTTP, tracing.SPAN_PROCESS, tracing.SPAN_ENTITY, tracing.SPAN_HANDLER}
    trace_ids = {s.context.trace_id for s in spans.values()}
    assert len(trace_ids) == 1
    trace_hex = format(trace_ids.pop(), "032x")
    assert spans[tracing.SPAN_PROCESS].parent.span_id == spans[tracing.SPAN_HTTP].context.span_id
    assert spans[tracing.SPAN_HANDLER].parent.span_id == spans[tracing.SPAN_ENTITY].context.span_id
    assert spans[tracing.SPAN_PROCESS].attributes["cloudevents.event_type"] == "order.created"
    assert spans[tracing.SPAN_PROCESS].attributes["aos.correlation_id"] == "conv-1"
    # The Service Bus message carries the same trace, and a receiver continues it.
    assert props[TRACEPARENT_PROPERTY].split("-")[1] == trace_hex
    received = event_from_message(reply.to_json().encode(), content_type="application/cloudevents+json",
                                  application_properties={k.encode(): v.encode() for k, v in props.items()})
    with tracing.event_span(tracing.SPAN_TRIGGER, received) as consumer:
        assert format(consumer.get_span_context().trace_id, "032x") == trace_hex


def test_inject_and_extract_message_properties(span_exporter: InMemorySpanExporter) -> None:
    with tracing.span("send") as sender:
        props = tracing.inject_properties({"cloudEvents_type": "x"})
    assert "traceparent" in props
    with tracing.span("receive", parent={b"traceparent": props["traceparent"].encode()}) as receiver:
        assert receiver.get_span_context().trace_id == sender.get_span_context().trace_id
    with tracing.span("from-header", parent={"TraceParent": props["traceparent"]}) as other:
        assert other.get_span_context().trace_id == sender.get_span_context().trace_id


def test_errors_are_recorded_on_the_span(span_exporter: InMemorySpanExporter) -> None:
    with pytest.raises(KeyError), tracing.span("failing", attempt=1, payload={"x": 1}, skipped=None):
        raise KeyError("boom")
    [span] = span_exporter.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.events[0].name == "exception"
    assert span.attributes["payload"] == "{'x': 1}" and "skipped" not in span.attributes


def test_without_a_span_nothing_is_injected(span_exporter: InMemorySpanExporter) -> None:
    event = Event(type="x")
    assert tracing.inject(event) is event
    assert tracing.current_traceparent() is None
    assert tracing.trace_ids() == (None, None)



def test_without_a_provider_a_span_still_carries_the_callers_trace_onto_events() -> None:
    # No provider configured (the default): nothing is recorded, but an event stamped inside a span started from
    # a caller's traceparent continues the caller's trace, as OpenTelemetry's own no-op tracer would have it.
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with tracing.span(tracing.SPAN_HTTP, parent=caller) as current:
        current.set_attribute("ignored", 1)  # a span that records nothing still takes attributes
        event = tracing.inject(Event(type="x"))
    assert event.traceparent == caller
    assert tracing.current_traceparent() is None  # and the caller's context ends with the span
    with pytest.raises(KeyError), tracing.span("failing"):
        raise KeyError("the block's exception goes through")


def test_a_global_provider_set_later_records_from_the_next_span_after_refresh(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The global provider is looked up once and kept while none is set; `configure_telemetry` sets one and calls
    # `refresh`, so the spans after it are exported. (The real global can be set once per process, so the
    # lookup is replaced here.)
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = InMemorySpanExporter()
    configured = TracerProvider()
    configured.add_span_processor(SimpleSpanProcessor(exporter))
    current: list[trace.TracerProvider] = [trace.ProxyTracerProvider()]
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: current[0])
    tracing.refresh()
    with tracing.span("before") as span:
        assert not span.is_recording()
    current[0] = configured  # what configure_telemetry does through the distro
    tracing.refresh()
    with tracing.span("after") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["after"]
    current[0] = trace.ProxyTracerProvider()
    tracing.refresh()  # leave the lookup as the other tests expect it
    configured.shutdown()
