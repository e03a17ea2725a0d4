"""An agent's model-and-tools loop survives `kill -9` of `aos serve` between a tool result and the next model
turn: after a restart the event is delivered again, the loop resumes from its committed steps, the MCP tool
(a real stdio server) ran once, and the first model turn was not asked again. The model service is the
project's scripted OpenAI-compatible chat server (tests/support/chat_server.py): no weights can be fetched."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import HostProcess
from tests.support.chat_server import chat_server

ROOT = Path(__file__).resolve().parents[2]


async def _settled(http: httpx.AsyncClient, event_id: str, within: float = 90.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        try:
            r = await http.get(f"/api/events/{event_id}")
        except httpx.TransportError:  # a keep-alive connection the host closed while idle
            continue
        assert r.status_code == 200, r.text
        if r.json()["status"] != "pending":
            return r.json()
        await asyncio.sleep(0.2)  # polling the host's progress over HTTP
    raise AssertionError(f"{event_id} still pending after {within} s")


async def test_kill_9_between_a_tool_result_and_the_next_model_turn_resumes_and_runs_the_tool_once(
        make_host: Any, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    server, script = chat_server([{"tool_calls": [("ledger__lookup", {"topic": "payments"})]},
                                  {"content": "Feasible after the restart."}])
    gate = script.hold(1)  # the second model turn waits: the host is killed while it is being asked
    config = {"agents": {"types": {"thinker": "tests.support.agents:Thinker"}},
              "ml": {"reasoner": "openai", "endpoint_url": f"{server.url}/v1/chat/completions", "attempts": 1}}
    thinker = {"type": "thinker", "id": "thinker", "subscribe": ["question"],
               "config": {"mcp_servers": [{"name": "ledger", "command": sys.executable, "cwd": str(ROOT),
                                           "args": ["-m", "tests.support.ledger_mcp_server"],
                                           "env": {"LEDGER": str(ledger)}}]}}
    with server:
        host: HostProcess = make_host(config=config)
        host.start()
        async with host.client() as http:
            assert (await http.post("/api/agents", json=thinker)).status_code == 201, "register"
            r = await http.post("/api/events", json={"id": "q-1", "type": "question", "source": "people/test",
                                                     "data": {"task": "Can we take payments?"}})
            assert r.status_code in (200, 202), r.text
        assert await asyncio.to_thread(script.arrived[1].wait, 90), "the second model turn was never asked"
        host.kill9()  # the tool result is committed; the model's next turn is in flight
        gate.set()
        lines = ledger.read_text().splitlines()
        assert len(lines) == 1 and json.loads(lines[0])["key"] == "q-1/thinker/main/2"

        host.start()
        async with host.client() as http:
            status = await _settled(http, "q-1")
            assert status["status"] == "completed", status
            state = (await http.get("/api/agents/thinker/context")).json()["state"]
            turns = await http.get("/api/agents/thinker/turns/q-1")  # the loop as the dashboard reads it
            assert turns.status_code == 200, turns.text
            assert (await http.get("/api/agents/nobody/turns/q-1")).status_code == 404
            assert (await http.get("/api/agents/No%20Such/turns/q-1")).status_code == 400
    steps = turns.json()["steps"]
    assert [s["kind"] for s in steps] == ["task", "model", "tool", "model"]
    assert steps[2]["status"] == "ok" and "payments was delivered twice before" in steps[2]["content"]
    outcome = state["outcomes"]["q-1"]
    assert outcome["answer"] == "Feasible after the restart." and outcome["tool_calls"] == 1
    assert len(ledger.read_text().splitlines()) == 1  # the tool ran once
    assert script.asked[0] == 1  # the committed first turn was not asked again
    assert script.asked[1] == 2  # the turn in flight at the kill was asked again
