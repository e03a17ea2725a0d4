"""Storage port adapters: documents with ETags and blobs, embedded (SQLite, in-memory) behind `Storage`."""

from __future__ import annotations

from services.storage.facade import Storage
from services.storage.memory import InMemoryStateStore
from services.storage.sqlite import SqliteStateStore

__all__ = ["InMemoryStateStore", "SqliteStateStore", "Storage"]
