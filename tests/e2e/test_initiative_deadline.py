"""The CEO's initiative has a reply deadline: a durable timer in a workflow on the local host. With the CTO
terminated, no feasibility answer comes, and the CEO decides `defer` with the reason, once."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _until(http: httpx.Client, url: str, done: Any, within: float = 90) -> Any:
    deadline = time.monotonic() + within
    while True:
        body = http.get(url).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)  # polling a subprocess host over HTTP


def test_a_missing_reply_defers_the_initiative_at_its_deadline(make_host: Any) -> None:
    config = json.loads((ROOT / "examples" / "config" / "aos.json").read_text())
    for agent in config["agents"]["instances"]:
        if agent["id"] == "ceo":
            agent["config"]["reply_deadline"] = "3s"
            agent["depends_on"] = ["cfo"]  # so the CTO may be terminated
    host = make_host({}, config)
    host.start()
    key = host.env["AOS_DEVHOST__FUNCTION_KEY"]
    with httpx.Client(base_url=host.base, headers={"x-functions-key": key}, timeout=30) as http:
        assert http.delete("/api/agents/cto").status_code == 200
        initiative = {"id": "launch-y", "title": "Launch product Y", "department": "product", "cost": 90000,
                      "description": "a smaller launch"}
        sent = http.post("/api/events?wait=10", json={"id": "init-y", "type": "strategy.initiative",
                                                      "data": initiative})
        assert sent.status_code in (200, 202), sent.text
        started = time.monotonic()
        ceo = _until(http, "/api/agents/ceo/context",
                     lambda b: b["state"].get("initiatives", {}).get("launch-y", {}).get("status") == "decided")
        assert time.monotonic() - started >= 2  # not before the deadline (3 s after the CEO asked)
        state = ceo["state"]["initiatives"]["launch-y"]
        assert state["decision"] == "defer" and state["reply_deadline"] == "3s" and "cfo" in state["replies"]
        decision = http.get(f"/api/decisions/{state['decision_id']}").json()
        assert decision["chosen"] == "defer"
        assert decision["rationale"].startswith("no feasibility answer from cto within 3s"), decision
        # Once: one decision for the initiative, and the deadline workflow completed.
        time.sleep(1)
        decisions = [d for d in http.get("/api/decisions").json()["decisions"]
                     if d["title"] == "Initiative: Launch product Y"]
        assert [d["id"] for d in decisions] == [state["decision_id"]]
        workflow = _until(http, f"/api/workflows/{state['deadline_workflow']}", lambda b: b["status"] != "running")
        assert workflow["status"] == "completed" and workflow["steps"]["replies"]["result"] == {"timed_out": True}
