"""The live dashboard: one anonymous HTML page that reads the API with the caller's function key."""

from __future__ import annotations

from services.dashboard.page import dashboard_page

__all__ = ["dashboard_page"]
