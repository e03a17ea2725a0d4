"""The composition root: the one place that picks adapters from config and knows `services` and `agents`.

Everything here imports adapters lazily, inside the function that needs them, so importing `aos_core`
(and `function_app`) stays cheap and loads no cloud SDK.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Any

from aos_core.config import AOSConfig
from aos_core.errors import ConfigError
from aos_core.ports import Clock, EventBus, StateStore

ENTRY_POINT_GROUP = "aos.agents"

_default_store: StateStore | None = None
_default_store_lock = asyncio.Lock()


async def build_state_store(config: AOSConfig) -> StateStore:
    backend = config.storage.backend
    if backend == "sqlite":
        from services.storage import SqliteStateStore

        return SqliteStateStore(config.storage_path())
    if backend == "memory":
        from services.storage import InMemoryStateStore

        return InMemoryStateStore()
    raise ConfigError(f"storage.backend: {backend!r} is not available in this build (use 'sqlite' or 'memory')")


async def build_event_bus(config: AOSConfig, clock: Clock | None = None) -> EventBus:
    backend = config.messaging.backend
    if backend == "sqlite":
        from services.messaging import SqliteEventBus

        return SqliteEventBus(config.bus_path(), clock=clock)
    raise ConfigError(f"messaging.backend: {backend!r} is not available in this build (use 'sqlite')")


async def default_state_store() -> StateStore:
    """The process-wide store used by objects created without one, such as `ContextMCPServer(agent_id)`."""
    global _default_store
    async with _default_store_lock:
        if _default_store is None:
            _default_store = await build_state_store(AOSConfig())
        return _default_store


def set_default_state_store(store: StateStore | None) -> None:
    """Make `store` the process default (the warm kernel does this with its own store)."""
    global _default_store
    _default_store = store


def runtime_default_is(store: StateStore | None) -> bool:
    return store is not None and store is _default_store


def entry_point_agent_types() -> Iterator[tuple[str, Any]]:
    """Agent classes that installed packages publish under the `aos.agents` entry point group."""
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        yield entry.name, entry.load()


def import_agent_type(path: str) -> Any:
    """Load `package.module:ClassName` (from `agents.types` in config)."""
    module_name, sep, attr = path.partition(":")
    if not sep:
        raise ConfigError(f"agents.types: {path!r} must look like 'package.module:ClassName'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"agents.types: cannot load {path!r}: {exc}") from exc
