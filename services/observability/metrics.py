"""AOS metrics: counters, histograms and observable gauges through the OpenTelemetry metrics API.

`metrics.increment("agent.events.processed", type="order.created")` and
`metrics.histogram("agent.processing.duration", seconds)` are all callers need. Gauges are read when the
exporter collects: `register_gauges` takes callbacks for agents by lifecycle state and dead-letter depth,
and breaker states come from the reliability registry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import metrics as otel_metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from aos_core.telemetry import EVENTS_FAILED, EVENTS_PROCESSED, HANDLING_DURATION  # noqa: F401

METER_NAME = "aos"

# Metric names the kernel uses (documented so dashboards and alert rules agree).
AGENTS_BY_STATE = "aos.agents"  # gauge, attrs: state
DEAD_LETTERS = "aos.bus.dead_letters"  # gauge, attrs: topic, subscription
BREAKER_STATE = "aos.breaker.state"  # gauge 0 closed / 1 half_open / 2 open, attrs: name

_BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
_lock = threading.Lock()
_provider: MeterProvider | None = None
_meter: Meter | None = None
_counters: dict[str, Any] = {}
_histograms: dict[str, Any] = {}
_gauges: dict[str, Callable[[], Mapping[tuple[tuple[str, str], ...], float]]] = {}


def use_meter_provider(provider: MeterProvider | None) -> None:
    """Record to `provider` (tests: an SDK provider with InMemoryMetricReader); None: the global one."""
    global _provider, _meter
    with _lock:
        _provider, _meter = provider, None
        _counters.clear()
        _histograms.clear()
        registered = dict(_gauges)
        _gauges.clear()
    for name, read in registered.items():
        _register(name, read)


def meter() -> Meter:
    global _meter
    with _lock:
        if _meter is None:
            _meter = (_provider or otel_metrics.get_meter_provider()).get_meter(METER_NAME)
        return _meter


def _attrs(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, str | bool | int | float) else str(v) for k, v in attributes.items()
            if v is not None}


def increment(name: str, n: int = 1, **attributes: Any) -> None:
    """Add `n` to the counter `name` for these attributes."""
    counter = _counters.get(name)
    if counter is None:
        counter = _counters.setdefault(name, meter().create_counter(name))
    counter.add(n, _attrs(attributes))


def histogram(name: str, value: float, *, unit: str = "s", **attributes: Any) -> None:
    """Record one value (a duration in seconds by default) in the histogram `name`."""
    hist = _histograms.get(name)
    if hist is None:
        hist = _histograms.setdefault(name, meter().create_histogram(name, unit=unit))
    hist.record(value, _attrs(attributes))


def _register(name: str, read: Callable[[], Mapping[tuple[tuple[str, str], ...], float]]) -> None:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        try:
            values = read()
        except Exception:  # a failing source must not break the whole collection
            return []
        return [Observation(value, dict(key)) for key, value in values.items()]

    with _lock:
        _gauges[name] = read
    meter().create_observable_gauge(name, callbacks=[observe])


def gauge(name: str, read: Callable[[], Mapping[tuple[tuple[str, str], ...], float]]) -> None:
    """Observe `read()` at each collection: `{((attr, value), ...): number}`."""
    _register(name, read)


def register_gauges(*, agents_by_state: Callable[[], Mapping[str, int]] | None = None,
                    dead_letters: Callable[[], Mapping[tuple[str, str], int]] | None = None,
                    breakers: Callable[[], Mapping[str, Mapping[str, Any]]] | None = None) -> None:
    """The standard AOS gauges (`breakers`: e.g. a kernel's `aos.breakers.states`). Callbacks run on the
    exporter's thread: return cached numbers, do no I/O."""
    if agents_by_state is not None:
        gauge(AGENTS_BY_STATE, lambda: {(("state", state),): n for state, n in agents_by_state().items()})
    if dead_letters is not None:
        gauge(DEAD_LETTERS, lambda: {(("topic", t), ("subscription", s)): n for (t, s), n in dead_letters().items()})
    if breakers is not None:
        gauge(BREAKER_STATE, lambda: {(("name", name),): _BREAKER_VALUE[snap["state"]]
                                      for name, snap in breakers().items()})
