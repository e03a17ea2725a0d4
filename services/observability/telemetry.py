"""Choose where telemetry goes, once per process.

- `APPLICATIONINSIGHTS_CONNECTION_STRING` set: `azure.monitor.opentelemetry.configure_azure_monitor()`
  (traces, metrics and logs to Application Insights), imported only then.
- else `OTEL_EXPORTER_OTLP_ENDPOINT` set: SDK providers with OTLP/HTTP exporters (needs the
  `opentelemetry-exporter-otlp-proto-http` package).
- else nothing is exported: the API's no-op providers stay in place and spans cost almost nothing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Any

from aos_core.errors import ConfigError

APPINSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
OTLP = "OTEL_EXPORTER_OTLP_ENDPOINT"
SERVICE_NAME = "aos"

_lock = threading.Lock()
_mode: str | None = None


def configure_telemetry(config: Any = None, *, environ: Mapping[str, str] | None = None) -> str:
    """Set up exporting from the environment once; returns "azure_monitor", "otlp" or "none".

    Later calls return the first answer without doing anything (the Functions worker imports the app once,
    but tests and the local host may build several kernels). `config` is accepted for symmetry with the
    other services; the choice is made from the environment as App Service sets it.
    """
    global _mode
    env = os.environ if environ is None else environ
    with _lock:
        if _mode is not None:
            return _mode
        if env.get(APPINSIGHTS):
            from azure.monitor.opentelemetry import configure_azure_monitor

            # The connection string is read from the environment by the distro; never passed around or logged.
            configure_azure_monitor(logger_name="aos")
            _mode = "azure_monitor"
        elif env.get(OTLP):
            _configure_otlp(env.get("OTEL_SERVICE_NAME") or SERVICE_NAME)
            _mode = "otlp"
        else:
            _mode = "none"
        if _mode != "none":
            from services.observability import tracing

            tracing.refresh()  # spans go to the provider just set from the next one on
        return _mode


def _configure_otlp(service_name: str) -> None:
    try:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ConfigError(f"{OTLP} is set but opentelemetry-exporter-otlp-proto-http is not installed") from None
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter())
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def telemetry_mode() -> str | None:
    """What `configure_telemetry` chose, or None before it ran."""
    return _mode


def _reset_for_tests() -> None:
    global _mode
    with _lock:
        _mode = None
