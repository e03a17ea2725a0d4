"""The live dashboard: one anonymous HTML page that reads the API with the caller's function key."""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "dashboard_page": "services.dashboard.page",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
