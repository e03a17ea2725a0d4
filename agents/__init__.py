"""Agents: BaseAgent (stateless), PerpetualAgent (state that outlives calls), PurposeDrivenAgent (goals).

Imported on first use: the Durable Functions SDK probes a package named `agents` (the OpenAI Agents SDK) when
it is imported, and finds this one first on a Functions worker; the probe must cost nothing.
"""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_HOMES = {
    "BaseAgent": "agents.base",
    "PerpetualAgent": "agents.perpetual",
    "Goal": "agents.purpose_driven",
    "PurposeDrivenAgent": "agents.purpose_driven",
}
__all__ = sorted(_HOMES)
__getattr__ = lazy_exports(__name__, _HOMES)
