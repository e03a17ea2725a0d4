"""The CEO, CFO and CTO agents in one kernel, configured by the shipped examples/config (in-process).

End-to-end over the local host is tests/e2e/test_business_scenario.py; these cover each agent's rules.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aos_core import AgentOperatingSystem, AOSConfig, Event
from aos_core.ports import AgentResult
from aos_core.testing import ManualClock
from services.context.turns import read_turns
from services.governance import DecisionLog, RiskRegistry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
LAUNCH = {"id": "launch-product-x", "title": "Launch product X", "department": "product", "cost": 250000,
          "description": "A growth opportunity: a mobile app for product X with an API for partners",
          "scope": ["mobile app", "partner API", "launch campaign"]}


@pytest.fixture
async def aos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AgentOperatingSystem]:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(EXAMPLES))
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))  # a Monday
    kernel = AgentOperatingSystem(AOSConfig(data_dir=tmp_path), clock=clock)
    await kernel.initialize()
    yield kernel
    await kernel.shutdown()


async def send(aos: AgentOperatingSystem, event_type: str, data: Any, **fields: Any) -> dict[str, AgentResult]:
    fields.setdefault("time", aos.clock.now())
    results = await aos.process_event(Event(type=event_type, source="people/test", data=data, **fields))
    await aos.run_until_idle()
    return {r.agent_id: r for r in results}


async def state(aos: AgentOperatingSystem, agent_id: str) -> dict[str, Any]:
    snapshot = await aos.agent_state(agent_id)
    assert snapshot is not None
    return snapshot["state"]


async def test_initiative_gets_both_replies_and_a_decision_citing_them(aos: AgentOperatingSystem) -> None:
    await send(aos, "strategy.initiative", LAUNCH, id="board-1")
    ceo = await state(aos, "ceo")
    initiative = ceo["initiatives"]["launch-product-x"]
    assert initiative["status"] == "decided" and initiative["conversation"] == "board-1"
    cfo_reply, cto_reply = initiative["replies"]["cfo"], initiative["replies"]["cto"]
    assert cfo_reply["verdict"] == "escalate" and cfo_reply["rule_id"] == "cfo-spending"  # 250k > 100k threshold
    assert cto_reply["risk_level"] == "low" and cto_reply["factors"] == ["mobile clients", "a public API"]

    log = DecisionLog(aos.store)
    decision = await log.get(initiative["decision_id"])
    assert decision.chosen == "approve" and decision.agent_id == "ceo"
    assert cfo_reply["decision_id"] in decision.rationale and cto_reply["decision_id"] in decision.rationale
    assert "recommendation:" in decision.rationale  # the reasoner's view is cited too
    for reply in (cfo_reply, cto_reply):  # the advisers' own decisions are in the same conversation
        assert (await log.get(reply["decision_id"])).correlation_id == "board-1"
    assert log.verify(decision) and (await aos.audit.verify()).ok  # type: ignore[union-attr]

    cfo = await state(aos, "cfo")  # the approved initiative is committed to the ledger, once
    assert cfo["ledger"]["product"]["spent"] == 250000
    goals = {g["id"]: g for g in ceo["progress"]["goals"]}
    assert goals["decide-initiatives"]["current"] == 1 and goals["decide-initiatives"]["progress"] == 0.25

    again = await send(aos, "strategy.initiative", LAUNCH, id="board-2")  # the same initiative again
    assert again["ceo"].result == {"initiative": "launch-product-x", "status": "decided", "conversation": "board-1"}
    assert (await state(aos, "cfo"))["ledger"]["product"]["spent"] == 250000


async def test_a_reply_outside_the_conversation_is_rejected(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("ceo", agent_id="ceo-solo", config={"peers": {"cfo": "nobody", "cto": "nobody"}})
    await aos.register_agent("tally", agent_id="nobody")
    await aos.send_message("ceo-solo", Event(type="strategy.initiative", source="people/test", data=LAUNCH,
                                             id="conv-a"))
    stray = Event(type="finance.cost_assessment", source="agents/cfo", correlationid="conv-other",
                  data={"initiative": "launch-product-x", "decision_id": "d1", "verdict": "approve"})
    result = await aos.send_message("ceo-solo", stray)
    assert result.status == "rejected" and "not in its conversation" in (result.error or "")
    initiative = (await state(aos, "ceo-solo"))["initiatives"]["launch-product-x"]
    assert initiative["replies"] == {} and initiative["status"] == "awaiting_replies"


async def test_spend_requests_by_policy_and_budget(aos: AgentOperatingSystem) -> None:
    small = await send(aos, "finance.spend_request", {"id": "r1", "department": "marketing", "amount": 60000})
    assert small["cfo"].result["outcome"] == "approve"  # type: ignore[index]
    before = (await state(aos, "cfo"))["ledger"]

    denied = (await send(aos, "finance.spend_request", {"id": "r2", "department": "marketing", "amount": 750000,
                                                        "description": "billboards"}))["cfo"].result
    assert denied["outcome"] == "deny" and denied["rule_id"] == "cfo-spending"  # type: ignore[index]
    cfo = await state(aos, "cfo")
    assert cfo["ledger"] == before  # a denied request changes nothing in the ledger
    why = await DecisionLog(aos.store).get(denied["decision_id"])  # type: ignore[index]
    assert why.chosen == "deny" and "above the spending limit 500,000.00" in why.rationale

    bad = await send(aos, "finance.spend_request", {"department": "marketing", "amount": -5})
    assert bad["cfo"].status == "rejected" and "greater than 0" in (bad["cfo"].error or "")
    assert (await state(aos, "cfo"))["ledger"] == before
    unknown = (await send(aos, "finance.spend_request", {"id": "r3", "department": "legal", "amount": 10}))["cfo"]
    assert unknown.result["outcome"] == "deny" and "no budget" in unknown.result["reason"]  # type: ignore[index]


async def test_escalation_approved_into_an_overrun_raises_a_risk_once(aos: AgentOperatingSystem) -> None:
    await send(aos, "finance.spend_request", {"id": "r1", "department": "marketing", "amount": 90000})
    held = (await send(aos, "finance.spend_request", {"id": "r2", "department": "marketing", "amount": 350000}))
    assert held["cfo"].result["outcome"] == "escalate"  # type: ignore[index]
    assert "would overrun" in held["cfo"].result["reason"]  # type: ignore[index]
    assert (await state(aos, "cfo"))["ledger"]["marketing"]["spent"] == 90000

    settled = await send(aos, "finance.spend_approval", {"request_id": "r2", "approved": True, "approver": "board"})
    assert settled["cfo"].result["risk"] == "budget-overrun-marketing-2026-03"  # type: ignore[index]
    cfo = await state(aos, "cfo")
    assert cfo["ledger"]["marketing"]["spent"] == 440000 and cfo["pending"] == {}
    risk = await RiskRegistry(aos.store).get("budget-overrun-marketing-2026-03")
    assert risk.owner == "cfo" and risk.status == "open"

    await send(aos, "finance.spend_request", {"id": "r3", "department": "marketing", "amount": 10})  # escalated
    report = await send(aos, "finance.variance_report.due", None, subject="cfo")
    assert report["cfo"].result["over_budget"] == ["marketing"]  # type: ignore[index]
    risks = await RiskRegistry(aos.store).list()
    assert [r.id for r in risks] == ["budget-overrun-marketing-2026-03"]  # raised once, not per sighting
    again = await send(aos, "finance.spend_approval", {"request_id": "r2", "approved": True, "approver": "board"})
    assert again["cfo"].status == "rejected"  # nothing is waiting any more


async def test_schedules_run_the_weekly_summary_and_the_variance_report(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_CONFIG_DIR", str(EXAMPLES))
    clock = ManualClock(datetime(2026, 4, 3, 10, 0, tzinfo=UTC))  # a Friday
    aos = AgentOperatingSystem(AOSConfig(data_dir=tmp_path), clock=clock)
    await aos.initialize()
    try:
        await send(aos, "strategy.initiative", LAUNCH)
        emitted = await aos.tick(datetime(2026, 4, 6, 8, 0, 30, tzinfo=UTC))  # Monday
        assert [e.type for e in emitted] == ["strategy.weekly_summary.due"]
        await aos.run_until_idle()
        summary = (await state(aos, "ceo"))["summaries"][-1]
        assert summary["week"] == "2026-W15" and [d["initiative"] for d in summary["decided"]] == ["launch-product-x"]

        emitted = await aos.tick(datetime(2026, 5, 1, 8, 0, 30, tzinfo=UTC))  # the 1st; Monday 27 April was missed
        assert sorted(e.type for e in emitted) == ["finance.variance_report.due", "strategy.weekly_summary.due"]
        await aos.run_until_idle()
        report = (await state(aos, "cfo"))["reports"][-1]
        assert report["period"] == "2026-05"
        assert {line["department"]: line["spent"] for line in report["lines"]} == {
            "engineering": 0, "marketing": 0, "product": 250000}
        assert [s["week"] for s in (await state(aos, "ceo"))["summaries"]] == ["2026-W15", "2026-W18"]
    finally:
        await aos.shutdown()


async def test_cto_triages_incidents_records_adrs_and_flags_risky_proposals(aos: AgentOperatingSystem) -> None:
    outage = await send(aos, "ops.incident", {"id": "inc-1", "title": "Checkout down", "description": "full outage"})
    assert outage["cto"].result["priority"] == "P1" and outage["cto"].result["risk"] == "incident-inc-1"  # type: ignore[index]
    slow = await send(aos, "ops.incident", {"id": "inc-2", "title": "Search slow", "severity": "low"})
    assert slow["cto"].result["priority"] == "P4"  # type: ignore[index]
    await send(aos, "ops.incident.resolved", {"id": "inc-1"})
    cto = await state(aos, "cto")
    assert cto["incidents"]["inc-1"]["status"] == "resolved" and cto["metrics"]["open_p1_incidents"] == 0

    adr = await send(aos, "tech.adr.propose", {"title": "Use Durable entities for agents",
                                               "context": "agents live long", "decision": "one entity per agent",
                                               "alternatives": ["actors"]})
    assert adr["cto"].result["number"] == "ADR-0001"  # type: ignore[index]
    risky = await send(aos, "tech.proposal", {"id": "p1", "title": "New platform",
                                              "description": "migrate legacy payments to a new platform in real-time"})
    result = risky["cto"].result
    assert result["risk_level"] == "high" and "regulated payments" in result["factors"]  # type: ignore[index]
    assert (await RiskRegistry(aos.store).get("tech-p1")).category == "technology"
    cto = await state(aos, "cto")
    assert {g["id"]: g["current"] for g in cto["progress"]["goals"]} == {
        "triage-incidents": 2, "record-adrs": 1, "assess-proposals": 1}


async def test_an_outage_reported_twice_without_an_id_is_one_incident_and_one_risk(aos: AgentOperatingSystem) -> None:
    report = {"title": "Checkout down", "description": "full outage of checkout in EU", "service": "checkout"}
    first = (await send(aos, "ops.incident", report))["cto"].result
    again = (await send(aos, "ops.incident", {**report, "title": "checkout DOWN"}))["cto"].result  # a re-run
    assert first["priority"] == "P1" and again["id"] == first["id"] and again["risk"] == first["risk"]  # type: ignore[index]
    assert [r.id for r in await RiskRegistry(aos.store).list()] == [first["risk"]]  # type: ignore[index]
    other = (await send(aos, "ops.incident", {**report, "service": "search"}))["cto"].result
    assert other["id"] != first["id"]  # type: ignore[index]
    await send(aos, "ops.incident.resolved", {"id": first["id"]})  # type: ignore[index]
    later = (await send(aos, "ops.incident", report))["cto"].result  # a new outage after the first one is over
    assert later["id"] not in (first["id"], other["id"])  # type: ignore[index]


async def test_cto_asks_its_model_which_reads_the_adrs_and_risks_before_answering(
        aos: AgentOperatingSystem) -> None:
    """The shipped config's tool rules make the rule-based model call the CTO's tools: the loop runs for real
    without a model, and the assessment (the decision) is what the rules alone give."""
    await send(aos, "ops.incident", {"id": "inc-1", "title": "Checkout down", "description": "full outage"})
    await send(aos, "tech.adr.propose", {"title": "Use Durable entities", "context": "agents live long",
                                         "decision": "one entity per agent"})
    replies = await send(aos, "tech.proposal", {"id": "p2", "title": "Payments API",
                                                "description": "integrate payments with a mobile api"},
                         id="proposal-p2")
    result = replies["cto"].result
    assert result["risk_level"] == "medium" and result["feasible"] is True  # type: ignore[index]
    opinion = result["opinion"]  # type: ignore[index]
    assert opinion.startswith("[base] recommendation:")
    assert "cto_list_adrs" in opinion and "ADR-0001" in opinion and "incident-inc-1" in opinion
    steps = await read_turns(aos.store, "cto", "proposal-p2")
    assert [s["kind"] for s in steps] == ["task", "model", "tool", "tool", "model"]
    assert [s["call"]["name"] for s in steps if s["kind"] == "tool"] == ["cto_list_adrs", "cto_list_risks"]
    reasoning = (await state(aos, "cto"))["reasoning"]
    assert reasoning["by_model"]["rule-based"]["turns"] >= 2 and reasoning["tokens_in"] > 0


def test_an_agent_built_by_hand_has_its_role_defaults() -> None:
    from agents.business import CEOAgent

    ceo = CEOAgent()
    assert (ceo.agent_id, ceo.adapter_name, [g.id for g in ceo.goals]) == ("ceo", "ceo", ["decide-initiatives", "okrs"])
    assert CEOAgent("ceo-emea", config={"adapter_name": "ceo-eu"}).adapter_name == "ceo-eu"


async def test_okrs_drive_the_ceo_goal(aos: AgentOperatingSystem) -> None:
    okrs = {"objectives": [{"id": "grow", "title": "Grow revenue", "key_results": [
        {"id": "arr", "target": 10, "current": 5}, {"id": "nps", "target": 50}]}]}
    assert (await send(aos, "strategy.okr.set", okrs))["ceo"].result["okr_progress"] == 0.25  # type: ignore[index]
    await send(aos, "strategy.okr.progress", {"key_result": "nps", "value": 45})
    goals = {g["id"]: g for g in (await state(aos, "ceo"))["progress"]["goals"]}
    assert goals["okrs"]["current"] == 0.7 and goals["okrs"]["met"] is True
    wrong = await send(aos, "strategy.okr.progress", {"key_result": "nope", "value": 1})
    assert wrong["ceo"].status == "rejected" and "no key result" in (wrong["ceo"].error or "")
