"""function_app's governance side over its functions: audit, policies, idempotency, risks, decisions, MCP, traces."""

from __future__ import annotations

import json
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from aos_core import runtime
from services.governance.decisions import DecisionLog
from services.messaging.servicebus import to_message
from tests.support.durable_webhook import SignalRecorder
from tests.support.function_calls import body_of, call, deliver_signals, principal, register

pytestmark = pytest.mark.usefixtures("warm_kernel")


async def test_every_state_change_is_in_an_audit_chain_that_verifies(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    await call("post_events", "POST", body={"id": "a1", "source": "c", "type": "ping"}, durable=durable)
    await call("delete_agent", "DELETE", route={"agent_id": "t1"}, durable=durable)
    page = body_of(await call("list_audit"))
    assert [(e["actor"], e["action"], e["subject"]) for e in page["entries"]] == [
        ("function-key", "agent.registered", "agent/t1"), ("function-key", "event.accepted", "event/a1"),
        ("function-key", "agent.terminated", "agent/t1")]
    assert body_of(await call("list_audit", params={"action": "event.accepted"}))["entries"][0]["seq"] == 2
    first = body_of(await call("list_audit", params={"limit": "1"}))
    assert len(first["entries"]) == 1 and first["next"] == "/api/audit?after=1&limit=1"
    verified = body_of(await call("verify_audit"))
    assert verified == {"ok": True, "count": 3, "first_bad_seq": None, "reason": None}
    assert (await call("list_audit", params={"limit": "0"})).status_code == 400


@pytest.mark.parametrize("raw", ["\u00b2", "\u0661\u0660", "1e3", "-1"])  # ², Arabic-Indic 10: isdigit
async def test_a_number_in_the_query_is_plain_ascii_digits_or_a_400(raw: str) -> None:
    for operation in ("list_audit", "list_decisions"):
        answer = await call(operation, params={"limit": raw})
        assert answer.status_code == 400, (operation, raw)
        assert "limit must be an integer" in body_of(answer)["detail"]


async def test_a_role_denial_is_a_403_and_is_audited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_AUTH__TRUST_PRINCIPAL_HEADER", "true")
    reader = {"x-ms-client-principal": principal("reader", name="rita@example.com")}
    denied = await call("create_agent", "POST", body={"type": "tally", "id": "x1"}, headers=reader)
    assert denied.status_code == 403
    [entry] = body_of(await call("list_audit"))["entries"]
    assert (entry["actor"], entry["action"], entry["payload"]["needs"]) == ("rita@example.com", "auth.denied", "admin")


async def test_policies_deny_with_the_rule_and_leave_a_trace(monkeypatch: pytest.MonkeyPatch,
                                                            durable: SignalRecorder) -> None:
    monkeypatch.setenv("AOS_GOVERNANCE__POLICIES", json.dumps([
        {"id": "no-refunds-for-t1", "kind": "event_types", "agent": "t1", "deny": ["refund.*"]},
        {"id": "two-per-minute", "kind": "rate_limit", "action": "event.submit", "limit": 2, "per": 60}]))
    await register("t1", subscribe=["*"])
    refused = await call("post_events", "POST", body={"id": "r1", "source": "c", "type": "refund.issued"},
                         params={"wait": "1"}, durable=durable)
    assert refused.status_code == 200 and durable.signals == []
    [result] = body_of(refused)["results"]
    assert (result["status"], result["rule_id"]) == ("rejected", "no-refunds-for-t1")
    ok = await call("post_events", "POST", body={"id": "r2", "source": "c", "type": "order.placed"}, durable=durable)
    assert ok.status_code == 202
    limited = await call("post_events", "POST", body={"id": "r3", "source": "c", "type": "order.placed"},
                         durable=durable)
    assert limited.status_code == 403
    assert body_of(limited)["rule_id"] == "two-per-minute"
    assert (await call("get_event", route={"id": "r3"})).status_code == 404  # nothing accepted
    denials = body_of(await call("list_audit", params={"action": "policy.denied"}))["entries"]
    assert [e["payload"]["rule_id"] for e in denials] == ["no-refunds-for-t1", "two-per-minute"]


async def test_an_idempotency_key_replays_the_first_response(durable: SignalRecorder) -> None:
    headers = {"idempotency-key": "create-t9"}
    first = await call("create_agent", "POST", body={"type": "tally", "id": "t9"}, headers=headers)
    again = await call("create_agent", "POST", body={"type": "tally", "id": "t9"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert body_of(again) == body_of(first) and again.headers["Idempotent-Replayed"] == "true"
    other = await call("create_agent", "POST", body={"type": "tally", "id": "t10"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in body_of(other)["detail"]
    assert (await call("get_agent", route={"agent_id": "t10"})).status_code == 404
    risk = {"title": "Supplier outage", "likelihood": 3, "impact": 4, "owner": "cto"}
    made = [await call("create_risk", "POST", body=risk, headers={"idempotency-key": "r-1"}) for _ in range(2)]
    assert body_of(made[0])["id"] == body_of(made[1])["id"]
    assert len(body_of(await call("list_risks"))["risks"]) == 1


async def test_risks_are_raised_changed_and_closed_with_their_history() -> None:
    created = await call("create_risk", "POST", body={
        "title": "Key supplier may fail", "likelihood": 2, "impact": 5, "owner": "cfo", "mitigations": ["dual source"]})
    assert created.status_code == 201
    risk = body_of(created)
    assert (risk["score"], risk["status"], created.headers["Location"]) == (10, "open", f"/api/risks/{risk['id']}")
    changed = await call("update_risk", "PATCH", route={"risk_id": risk["id"]},
                         body={"likelihood": 4, "status": "mitigating", "note": "contract renewal late"})
    assert (body_of(changed)["score"], body_of(changed)["status"]) == (20, "mitigating")
    closed = body_of(await call("close_risk", "DELETE", route={"risk_id": risk["id"]},
                                params={"resolution": "second supplier signed"}))
    assert closed["status"] == "closed" and closed["resolution"] == "second supplier signed"
    history = body_of(await call("get_risk", route={"risk_id": risk["id"]}))["history"]
    assert len(history) == 3
    assert body_of(await call("list_risks", params={"status": "open"}))["risks"] == []
    bad = await call("create_risk", "POST", body={"title": "x", "likelihood": 9, "impact": 1, "owner": "me"})
    assert bad.status_code == 400
    assert (await call("get_risk", route={"risk_id": "nope"})).status_code == 404


async def test_a_decision_is_readable_with_its_rationale_and_audit_link() -> None:
    async def decide(aos: Any) -> str:
        record = await DecisionLog(aos.store, audit=aos.audit, clock=aos.clock).record({
            "agent_id": "cfo", "title": "Fund launch", "inputs": {"budget": 50000},
            "options": [{"name": "fund"}, {"name": "defer"}], "chosen": "fund",
            "rationale": "within budget and the CTO rates the risk low", "confidence": 0.8}, actor="cfo")
        return record.id

    decision_id = await runtime.with_aos(decide)
    got = body_of(await call("get_decision", route={"decision_id": decision_id}))
    assert (got["chosen"], got["confidence"]) == ("fund", 0.8) and got["audit_seq"] is not None
    listed = body_of(await call("list_decisions", params={"agent_id": "cfo"}))["decisions"]
    assert [d["id"] for d in listed] == [decision_id]
    assert (await call("get_decision", route={"decision_id": "missing"})).status_code == 404
    rated = await call("post_feedback", "POST", route={"decision_id": decision_id},
                       body={"kind": "thumbs", "value": "up", "comment": "good call"})
    assert rated.status_code == 201, rated.get_body()
    assert [f["value"] for f in body_of(await call("list_feedback", route={"decision_id": decision_id}))[
        "feedback"]] == ["up"]
    assert (await call("post_feedback", "POST", route={"decision_id": decision_id},
                       body={"kind": "thumbs", "value": "sideways"})).status_code == 400
    assert (await call("post_feedback", "POST", route={"decision_id": "missing"},
                       body={"kind": "thumbs", "value": "up"})).status_code == 404


async def test_the_os_mcp_server_answers_at_api_mcp() -> None:
    await register("t1")
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "list_agents", "arguments": {}}}
    response = await call("mcp", "POST", body=request, headers=headers)
    assert response.status_code == 200, response.get_body()
    answer = body_of(response)
    assert answer["id"] == 1 and "t1" in json.dumps(answer["result"])
    garbled = await call("mcp", "POST", raw=b"{nope", headers=headers)
    assert garbled.status_code == 400 or body_of(garbled)["error"]["code"] == -32700


async def test_one_trace_from_http_through_the_entity_to_the_handler_and_the_bus(
        monkeypatch: pytest.MonkeyPatch, durable: SignalRecorder, span_exporter: InMemorySpanExporter) -> None:
    monkeypatch.setenv("AOS_AGENTS__TYPES", json.dumps({"announcer": "tests.support.agents:Announcer"}))
    await register("a1", "announcer", subscribe=["order.*"])
    accepted = await call("post_events", "POST", body={"id": "t-1", "source": "shop", "type": "order.placed"},
                          durable=durable)
    assert accepted.status_code == 202
    await deliver_signals(durable, {})
    names = {s.name: s for s in span_exporter.get_finished_spans()}
    chain = [names[n] for n in ("aos.http", "aos.kernel.process_event", "aos.entity.deliver", "aos.agent.handle")]
    assert len({s.context.trace_id for s in chain}) == 1
    trace_id = format(chain[0].context.trace_id, "032x")

    events = await runtime.with_aos(lambda aos: aos.bus.conversation("t-1"))
    [seen] = [e for e in events if e.type == "order.placed.seen"]
    properties = {(k.decode() if isinstance(k, bytes) else k): v
                  for k, v in (to_message(seen).application_properties or {}).items()}
    traceparent = properties["traceparent"]
    assert (traceparent.decode() if isinstance(traceparent, bytes) else traceparent).split("-")[1] == trace_id


async def test_the_timer_raises_an_alert_that_agents_receive_and_the_audit_keeps(
        monkeypatch: pytest.MonkeyPatch, durable: SignalRecorder) -> None:
    from azure.functions.servicebus import ServiceBusMessage
    from azure.functions.timer import TimerRequest

    from tests.support.function_calls import functions

    monkeypatch.setenv("AOS_GOVERNANCE__ALERTS", json.dumps([
        {"id": "poison", "kind": "dead_letters", "threshold": 0, "severity": "warning"}]))
    await register("ops", subscribe=["aos.alert.*"])
    poison = ServiceBusMessage(body=b"not json", message_id="p-9", content_type="application/cloudevents+json",
                               application_properties={}, user_properties={})
    await functions()["events_topic"].get_user_function()(message=poison, client=durable.client_binding())
    tick = functions()["tick"].get_user_function()
    await tick(timer=TimerRequest(), client=durable.client_binding())
    await tick(timer=TimerRequest(), client=durable.client_binding())  # still breaching: raised once
    [signal] = durable.take()
    assert (signal.key, signal.input["data"]["rule_id"], signal.input["data"]["dead_letters"]) == ("ops", "poison", 1)
    raised = body_of(await call("list_audit", params={"action": "alert.raised"}))["entries"]
    assert [e["subject"] for e in raised] == ["alert/poison"]
