"""Messaging port adapters: the embedded Service Bus-like `SqliteEventBus` and the user-facing `MessageBus`."""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "MessageBus": "services.messaging.message_bus",
    "Subscription": "services.messaging.message_bus",
    "SqliteEventBus": "services.messaging.sqlite_bus",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
