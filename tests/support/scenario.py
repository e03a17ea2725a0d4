"""The "launch product X" scenario as a user runs it against a host: the example script over HTTP, then what
the API shows the CEO, CFO and CTO did (tests/e2e on the repo, tests/deploy on the deployed package)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _poll(read: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)  # the agents answer each other through the host's topics, asynchronously


def check_scenario(base: str, key: str, http: httpx.Client) -> None:
    """Run examples/run_scenario.py against `base` and check every outcome the README promises."""
    run = subprocess.run([sys.executable, "examples/run_scenario.py", "--url", base, "--key", key], cwd=ROOT,
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "ceo decided 'approve' on 'Initiative: Launch product X'" in out
    assert "cfo decided 'deny' on 'Spend request" in out
    assert "audit chain: OK" in out

    # The CEO's decision cites the CFO's and the CTO's replies, which are decisions in the same conversation.
    ceo = [d for d in http.get("/api/decisions", params={"agent_id": "ceo"}).json()["decisions"]
           if d["title"] == "Initiative: Launch product X"]
    assert len(ceo) == 1 and ceo[0]["chosen"] == "approve"
    conversation = ceo[0]["correlation_id"]
    advisers = {d["agent_id"]: d for d in http.get("/api/decisions").json()["decisions"]
                if d["correlation_id"] == conversation and d["agent_id"] != "ceo"}
    assert set(advisers) == {"cfo", "cto"}
    assert advisers["cfo"]["chosen"] == "escalate" and advisers["cto"]["chosen"] == "feasible"
    for adviser in advisers.values():
        assert f"decision {adviser['id']}" in ceo[0]["rationale"]

    # They talked only through events and messages, all in that one conversation.
    entries = http.get("/api/audit", params={"action": "event.accepted", "limit": 1000}).json()["entries"]
    talk = [(e["payload"]["source"], e["payload"]["type"]) for e in entries
            if e["payload"].get("correlationid") == conversation]
    assert ("agents/ceo", "finance.cost_request") in talk and ("agents/ceo", "tech.feasibility_request") in talk
    assert ("agents/cfo", "finance.cost_assessment") in talk and ("agents/cto", "tech.feasibility_assessment") in talk
    assert ("agents/ceo", "strategy.decision") in talk

    verified = http.get("/api/audit/verify").json()
    total, after = 0, 0  # the whole chain, a page at a time: the check covered every entry there is
    while page := http.get("/api/audit", params={"after": after, "limit": 1000}).json()["entries"]:
        total, after = total + len(page), page[-1]["seq"]
    assert verified["ok"] is True and 5 < len(entries) <= verified["count"] <= total  # later ones may follow it

    # Goal progress: the CEO decided one initiative of four; the CFO committed the approved cost once.
    ceo_state = http.get("/api/agents/ceo/context").json()["state"]
    goals = {g["id"]: g for g in ceo_state["progress"]["goals"]}
    assert goals["decide-initiatives"]["current"] == 1 and goals["decide-initiatives"]["progress"] == 0.25
    assert goals["okrs"]["current"] == 0.1  # (0/2 products + 1/5 ARR) / 2
    cfo_state = _poll(lambda: http.get("/api/agents/cfo/context").json()["state"],
                      lambda s: s["ledger"]["product"]["spent"] == 250000)
    assert cfo_state["ledger"]["product"]["spent"] == 250000
    # Product spent within budget and nobody else spent: "no overruns" is measured (1 department) and met.
    cfo_goals = {g["id"]: g for g in cfo_state["progress"]["goals"]}
    assert (cfo_goals["no-overruns"]["measured"], cfo_goals["no-overruns"]["met"]) == (True, True)
    assert isinstance(cfo_goals["decide-requests"]["current"], int)  # a count, not 1.0

    # The denied spend left the marketing ledger as configured, and the reason is on record.
    assert cfo_state["ledger"]["marketing"] == {"budget": 400000, "spent": 0, "currency": "USD", "entries": []}
    denied = [r for r in cfo_state["requests"].values() if r["outcome"] == "deny"]
    assert len(denied) == 1 and "above the spending limit 500,000.00" in denied[0]["reason"]
    why = http.get(f"/api/decisions/{denied[0]['decision_id']}").json()
    assert why["chosen"] == "deny" and "cfo-spending" in why["rationale"]

    # The outage was triaged P1 by the CTO, who raised a risk for it.
    risks = http.get("/api/risks", params={"status": "open", "owner": "cto"}).json()["risks"]
    assert [r["title"] for r in risks] == ["P1 incident: Checkout down"]

    # A bad spend request is rejected with the reason and changes nothing.
    bad = http.post("/api/events", params={"wait": 10}, json={
        "type": "finance.spend_request", "source": "people/test", "data": {"department": "marketing", "amount": -1}})
    results = {r["agent_id"]: r for r in bad.json()["results"]}
    assert results["cfo"]["status"] == "rejected" and "greater than 0" in results["cfo"]["error"]
    assert http.get("/api/agents/cfo/context").json()["state"]["ledger"] == cfo_state["ledger"]
