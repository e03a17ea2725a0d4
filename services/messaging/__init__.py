"""Messaging port adapters: the embedded Service Bus-like `SqliteEventBus` and the user-facing `MessageBus`."""

from __future__ import annotations

from services.messaging.message_bus import MessageBus, Subscription
from services.messaging.sqlite_bus import SqliteEventBus

__all__ = ["MessageBus", "SqliteEventBus", "Subscription"]
