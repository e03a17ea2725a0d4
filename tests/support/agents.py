"""Agent types the function_app tests load by config (`agents.types`)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from agents.base import BaseAgent
from agents.perpetual import PerpetualAgent
from agents.purpose_driven import PurposeDrivenAgent
from aos_core.events import Event


class Announcer(PerpetualAgent):
    """Counts what it receives and publishes `<type>.seen` for each event."""

    agent_type = "announcer"

    async def handle_event(self, event: Event) -> Any:
        self.state["seen"] = self.state.get("seen", 0) + 1
        self.ctx.publish(f"{event.type}.seen", {"original": event.id})
        return self.state["seen"]


class Relay(BaseAgent):
    """Keeps no state and publishes `<type>.relayed` for each event (a stateless sender)."""

    agent_type = "relay"

    async def handle_event(self, event: Event) -> Any:
        self.ctx.publish(f"{event.type}.relayed", {"original": event.id})
        return None


class Sleeper(PerpetualAgent):
    """Blocks its event loop for `data.seconds` with a sync sleep: the handler every worker must survive."""

    agent_type = "sleeper"

    async def handle_event(self, event: Event) -> Any:
        import time

        time.sleep(float((event.data or {}).get("seconds", 0)))  # noqa: ASYNC251 - blocking on purpose
        self.state["slept"] = self.state.get("slept", 0) + 1
        return self.state["slept"]


class Probe(PerpetualAgent):
    """Counts what it receives, notes each pid it ran in, and counts overlaps: a run that finds another run of
    itself in progress anywhere on the machine (a marker file in the data folder created exclusively)."""

    agent_type = "probe"

    async def handle_event(self, event: Event) -> Any:
        marker = Path(os.environ["AOS_DATA_DIR"]) / f"probe-{self.agent_id}.running"
        try:
            fd: int | None = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            fd = None
            self.state["overlaps"] = self.state.get("overlaps", 0) + 1
        try:
            await asyncio.sleep(0.001)  # long enough for a second copy, if any, to be seen
            self.state["total"] = self.state.get("total", 0) + 1
            self.state["pids"] = sorted({*self.state.get("pids", []), os.getpid()})
        finally:
            if fd is not None:
                os.close(fd)
                marker.unlink()
        return self.state["total"]


class Thinker(PurposeDrivenAgent):
    """Hands `data.task` to its model with its tools (`think`) and keeps each event's outcome."""

    agent_type = "thinker"
    default_purpose = "Answer questions, using tools when they help"

    async def handle_event(self, event: Event) -> Any:
        thought = await self.think(str((event.data or {}).get("task", "")))
        self.state.setdefault("outcomes", {})[event.id] = thought.to_dict()
        return thought.to_dict()
