"""One agent's handler blocks its event loop for 8 s (a sync sleep): the host keeps serving, a message to
another agent completes within about a second, and the blocking is reported with the agent and the event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.e2e.conftest import HostProcess

CONFIG = {"agents": {"types": {"sleeper": "tests.support.agents:Sleeper"}}}


async def test_a_blocked_agent_does_not_stop_the_others(make_host: Any) -> None:
    host: HostProcess = make_host(config=CONFIG)
    host.start()
    async with host.client() as http:
        assert (await http.post("/api/agents", json={"type": "sleeper", "id": "s1"})).status_code == 201
        assert (await http.post("/api/agents", json={"type": "tally", "id": "t2"})).status_code == 201
        warm = await http.post("/api/agents/t2/messages", params={"wait": "5"}, json={"type": "warm.up"})
        assert warm.status_code == 200
        blocker = await http.post("/api/agents/s1/messages", json={"id": "nap", "type": "nap", "data": {"seconds": 8}})
        assert blocker.status_code == 202
        await asyncio.sleep(0.5)  # let the entity start the handler that blocks
        started = time.monotonic()
        health = await http.get("/api/health")
        reply = await http.post("/api/agents/t2/messages", params={"wait": "5"}, json={"type": "still.there"})
        elapsed = time.monotonic() - started
        assert health.status_code == 200
        assert reply.status_code == 200 and reply.json()["status"] == "completed", reply.text
        assert elapsed < 1.5, f"a message to another agent took {elapsed:.2f}s while s1 blocked"
        nap = None
        for _ in range(100):  # the blocker finishes after its 8 s
            nap = (await http.get("/api/events/nap")).json()
            if nap["status"] != "pending":
                break
            await asyncio.sleep(0.2)  # polling the host over HTTP
        assert nap is not None and nap["status"] == "completed"
        blocked: list[dict[str, Any]] = []
        for _ in range(50):  # reported from the loop once it turns again
            blocked = (await http.get("/api/audit", params={"action": "agent.blocked_loop"})).json()["entries"]
            if blocked:
                break
            await asyncio.sleep(0.1)  # polling the host over HTTP
        assert [(e["subject"], e["payload"]["event_id"]) for e in blocked] == [("agent/s1", "nap")]
        assert blocked[0]["payload"]["seconds"] >= 7
