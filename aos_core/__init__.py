"""The AOS kernel. Importing this package loads no cloud SDK; the kernel itself is imported on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aos_core.config import AOSConfig
    from aos_core.events import AgentId, Event, TopicId
    from aos_core.kernel import AgentOperatingSystem

__all__ = ["AOSConfig", "AgentId", "AgentOperatingSystem", "Event", "TopicId"]

_HOMES = {"AOSConfig": "aos_core.config", "AgentOperatingSystem": "aos_core.kernel", "AgentId": "aos_core.events",
          "Event": "aos_core.events", "TopicId": "aos_core.events"}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'aos_core' has no attribute {name!r}")
