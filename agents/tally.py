"""The smallest real agent: counts the events it receives, by type, in its context."""

from __future__ import annotations

from typing import Any

from agents.perpetual import PerpetualAgent
from aos_core.events import Event


class TallyAgent(PerpetualAgent):
    agent_type = "tally"
    capabilities = ("count",)

    def initial_state(self) -> dict[str, Any]:
        return {"total": 0, "by_type": {}}

    async def handle_event(self, event: Event) -> dict[str, Any]:
        state = self.state
        state["total"] = state.get("total", 0) + 1
        by_type = state.setdefault("by_type", {})
        by_type[event.type] = by_type.get(event.type, 0) + 1
        return {"total": state["total"]}
