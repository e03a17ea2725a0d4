"""Agent context: the storage-backed ContextMCPServer."""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "ContextMCPServer": "services.context.server",
    "merge_patch": "services.context.server",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
