"""Metrics for inference: through services.observability when it is installed, otherwise nowhere.

The cache and clients also keep their own counters (`ResponseCache.stats()`), so the numbers are readable
in-process whatever the telemetry backend is. Durations are in milliseconds (unit "ms").
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from typing import Any

_UNSET: Any = object()
_metrics: Any = _UNSET
_caches: weakref.WeakSet[Any] = weakref.WeakSet()
_gauge_lock = threading.Lock()
_gauge_registered = False


def _sink() -> Any:
    global _metrics
    if _metrics is _UNSET:
        try:
            from services.observability import metrics
        except ImportError:  # observability not installed in this deployment: counters stay local
            metrics = None
        _metrics = metrics
    return _metrics


def increment(name: str, n: int = 1, **attrs: Any) -> None:
    sink = _sink()
    if sink is not None:
        sink.increment(name, n, **attrs)


def histogram(name: str, value: float, *, unit: str = "ms", **attrs: Any) -> None:
    sink = _sink()
    if sink is not None:
        sink.histogram(name, value, unit=unit, **attrs)


def watch_cache(cache: Any) -> None:
    """Export `cache.hit_rate` as the gauge `ml.inference.cache_hit_rate` (attr `cache`: its name)."""
    global _gauge_registered
    _caches.add(cache)
    sink = _sink()
    with _gauge_lock:
        if sink is None or _gauge_registered:
            return
        _gauge_registered = True
    sink.gauge("ml.inference.cache_hit_rate", _hit_rates)


def _hit_rates() -> Mapping[tuple[tuple[str, str], ...], float]:
    return {(("cache", cache.name),): cache.hit_rate for cache in list(_caches)}
