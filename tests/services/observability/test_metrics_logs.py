from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from aos_core.testing import ManualClock
from services.observability import configure_logging, correlation, metrics, tracing
from services.reliability import BreakerRegistry, CircuitBreaker


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use_meter_provider(provider)
    yield reader
    metrics.use_meter_provider(None)
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    data = reader.get_metrics_data()
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = getattr(point, "value", None)
                    if value is None:
                        value = (point.count, point.sum)
                    out.setdefault(metric.name, []).append((dict(point.attributes), value))
    return out


async def test_counters_histograms_and_gauges(reader: InMemoryMetricReader) -> None:
    metrics.increment(metrics.EVENTS_PROCESSED, type="order.created", status="completed")
    metrics.increment(metrics.EVENTS_PROCESSED, 2, type="order.created", status="completed")
    metrics.increment(metrics.EVENTS_FAILED, type="order.created")
    metrics.histogram(metrics.HANDLING_DURATION, 0.25, type="order.created")
    metrics.histogram(metrics.HANDLING_DURATION, 0.75, type="order.created")
    states = {"running": 3, "failed": 1}
    breakers = BreakerRegistry()
    metrics.register_gauges(agents_by_state=lambda: states,
                            dead_letters=lambda: {("agent.events", "kernel"): 4}, breakers=breakers.states)
    breaker = breakers.get("servicebus", failure_threshold=1, clock=ManualClock())
    assert isinstance(breaker, CircuitBreaker)
    breaker.on_failure()
    got = points(reader)
    assert got[metrics.EVENTS_PROCESSED] == [({"type": "order.created", "status": "completed"}, 3)]
    assert got[metrics.EVENTS_FAILED] == [({"type": "order.created"}, 1)]
    assert got[metrics.HANDLING_DURATION] == [({"type": "order.created"}, (2, 1.0))]
    assert sorted(got[metrics.AGENTS_BY_STATE], key=str) == [({"state": "failed"}, 1), ({"state": "running"}, 3)]
    assert got[metrics.DEAD_LETTERS] == [({"topic": "agent.events", "subscription": "kernel"}, 4)]
    assert got[metrics.BREAKER_STATE] == [({"name": "servicebus"}, 2)]


def test_json_logs_carry_trace_and_correlation_ids() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("aos.test.json")
    logger.propagate = False
    handler = configure_logging(logging.INFO, logger=logger, handler=logging.StreamHandler(stream))
    assert configure_logging(logger=logger) is handler  # idempotent
    provider = TracerProvider()
    tracing.use_tracer_provider(provider)
    try:
        with tracing.span("work") as span, correlation("conv-7"):
            logger.info("handled %s", "evt-1", extra={"agent_id": "cfo"})
        logger.warning("outside")
    finally:
        tracing.use_tracer_provider(None)
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "handled evt-1" and first["agent_id"] == "cfo"
    assert first["correlation_id"] == "conv-7"
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in second and "correlation_id" not in second and second["level"] == "WARNING"
