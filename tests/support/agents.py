"""Agent types the function_app tests load by config (`agents.types`)."""

from __future__ import annotations

from typing import Any

from agents.perpetual import PerpetualAgent
from aos_core.events import Event


class Announcer(PerpetualAgent):
    """Counts what it receives and publishes `<type>.seen` for each event."""

    agent_type = "announcer"

    async def handle_event(self, event: Event) -> Any:
        self.state["seen"] = self.state.get("seen", 0) + 1
        await self.publish(f"{event.type}.seen", {"original": event.id})
        return self.state["seen"]
