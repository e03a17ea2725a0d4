"""Observability: OpenTelemetry spans and trace context, metrics, JSON logs, exporter setup and alerts.

`from services.observability import metrics, tracing` gives the two modules users call
(`metrics.increment(...)`, `with tracing.span(...)`). This package imports the OpenTelemetry API; aos_core
never imports it, and the Azure Monitor distro is imported only by `configure_telemetry` when needed.
"""

from __future__ import annotations

from services.observability import metrics, tracing
from services.observability.alerts import AlertEvaluator, HealthSnapshot, load_alert_rules
from services.observability.logs import JsonFormatter, configure_logging, correlation
from services.observability.telemetry import configure_telemetry

__all__ = [
    "AlertEvaluator",
    "HealthSnapshot",
    "JsonFormatter",
    "configure_logging",
    "configure_telemetry",
    "correlation",
    "load_alert_rules",
    "metrics",
    "tracing",
]
