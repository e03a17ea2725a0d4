"""function_app.py called the way the Functions host calls it: the app's own index, real binding types."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.functions.servicebus import ServiceBusMessage
from azure.functions.timer import TimerRequest

from aos_core import runtime
from aos_core.errors import StorageUnavailableError
from services.dispatch import durable as durable_dispatch
from tests.support.durable_webhook import SignalRecorder
from tests.support.function_calls import body_of, call, deliver_signals, functions, principal, register, run_entity

pytestmark = pytest.mark.usefixtures("warm_kernel")


# --- the index ---------------------------------------------------------------------------------------------


def test_the_app_indexes_every_trigger_with_its_bindings() -> None:
    index = {name: {b.type: b for b in f.get_bindings()} for name, f in functions().items()}
    http = {name for name, b in index.items() if "httpTrigger" in b}
    assert {"health", "openapi", "post_events", "get_event", "list_agents", "create_agent", "get_agent",
            "delete_agent", "post_message", "get_context", "list_audit", "verify_audit", "list_risks", "create_risk",
            "get_risk", "update_risk", "close_risk", "list_decisions", "get_decision", "post_feedback",
            "list_feedback", "list_deadletters", "get_turns", "mcp", "dashboard", "start_workflow", "get_workflow",
            "terminate_workflow", "raise_workflow_event"} == http
    routes = {(index[n]["httpTrigger"].route, tuple(str(m.value) for m in index[n]["httpTrigger"].methods))
              for n in http}
    assert ("events", ("POST",)) in routes and ("agents/{agent_id}/messages", ("POST",)) in routes
    assert all(str(index[n]["httpTrigger"].auth_level).endswith("ANONYMOUS") for n in ("health", "dashboard"))
    assert all(str(index[n]["httpTrigger"].auth_level).endswith("FUNCTION") for n in http - {"health", "dashboard"})
    topic = index["events_topic"]["serviceBusTrigger"]
    assert (topic.topic_name, topic.subscription_name, topic.connection) == (
        "%AOS_EVENTS_TOPIC%", "%AOS_EVENTS_SUBSCRIPTION%", "ServiceBusConnection")
    assert index["tick"]["timerTrigger"].schedule == "%AOS_TICK_SCHEDULE%"
    assert "entityTrigger" in index["agent"]
    for name in ("post_events", "post_message", "events_topic", "messages_topic", "tick", "delete_agent",
                 "start_workflow", "get_workflow", "terminate_workflow", "raise_workflow_event", "aos_workflow_step"):
        assert "durableClient" in index[name], name
    assert "orchestrationTrigger" in index["aos_workflow"] and "activityTrigger" in index["aos_workflow_step"]


# --- HTTP ---------------------------------------------------------------------------------------------------


async def test_health_is_anonymous_and_ready_checks_storage() -> None:
    response = await call("health", params={"ready": "1"})
    assert response.status_code == 200
    assert body_of(response)["checks"]["storage"] == "ok"


async def test_an_event_to_a_perpetual_agent_goes_through_its_entity(durable: SignalRecorder) -> None:
    created = await register("t1", subscribe=["order.*"])
    assert created.status_code == 201 and created.headers["Location"] == "/api/agents/t1"
    event = {"specversion": "1.0", "id": "e-1", "source": "shop", "type": "order.created", "data": {"n": 1}}
    accepted = await call("post_events", "POST", body=event, durable=durable)
    assert accepted.status_code == 202
    assert body_of(accepted) == {"id": "e-1", "status": "pending", "status_url": "/api/events/e-1"}
    [signal] = durable.signals
    assert (signal.key, signal.operation, signal.input["id"]) == ("t1", "deliver", "e-1")

    states: dict[str, Any] = {}
    [result] = await deliver_signals(durable, states)
    assert result["isError"] is False, result
    assert states["t1"]["delivered"] == 1 and states["t1"]["lifecycle"] == "running"
    status = await call("get_event", route={"id": "e-1"})
    assert body_of(status)["status"] == "completed"
    assert body_of(status)["results"][0]["result"] == {"total": 1}
    context = body_of(await call("get_context", route={"agent_id": "t1"}))
    assert context["state"]["total"] == 1 and context["version"] == 1


async def test_a_resent_event_id_is_not_applied_twice(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    event = {"id": "same", "source": "client", "type": "ping"}
    await call("post_events", "POST", body=event, durable=durable)
    states: dict[str, Any] = {}
    await deliver_signals(durable, states)
    again = await call("post_events", "POST", body={**event, "data": "changed"}, durable=durable)
    assert again.status_code == 202, again.get_body()
    assert body_of(again)["id"] == "same" and body_of(again)["status"] == "completed"
    assert durable.signals == []  # completed: nothing is delivered again
    # A redelivered signal (the host retried after a crash) is answered from the entity's state.
    out = run_entity("t1", states["t1"], [("deliver", event)])
    assert json.loads(out["results"][0]["result"])["status"] == "duplicate"
    assert body_of(await call("get_context", route={"agent_id": "t1"}))["state"]["total"] == 1


async def test_a_pending_event_resent_is_signalled_again_only_if_no_entity_holds_it(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    event = {"id": "lost-signal", "source": "client", "type": "ping"}
    down = SignalRecorder(fail=True)
    try:
        refused = await call("post_events", "POST", body=event, durable=down)  # the signal could not be sent
    finally:
        down.close()
    assert refused.status_code == 503
    again = await call("post_events", "POST", body=event, durable=durable)
    assert body_of(again)["status"] == "pending" and len(durable.signals) == 1
    queued = await call("post_events", "POST", body=event, durable=durable)  # its entity holds it now
    assert body_of(queued)["status"] == "pending" and len(durable.signals) == 1  # no second copy queued
    states: dict[str, Any] = {}
    await deliver_signals(durable, states)
    assert body_of(await call("get_context", route={"agent_id": "t1"}))["state"]["total"] == 1


async def test_wait_returns_200_with_results_when_done_and_202_when_not(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    waited = await call("post_events", "POST", body={"id": "w1", "source": "c", "type": "ping"},
                        params={"wait": "0.05"}, durable=durable)
    assert waited.status_code == 202  # the entity has not run: a timeout is a 202, never a 500
    assert waited.headers["Location"] == "/api/events/w1"
    nobody = await call("post_events", "POST", body={"id": "w2", "source": "c", "type": "unrouted"},
                        params={"wait": "1"}, durable=durable)
    assert nobody.status_code == 200
    assert body_of(nobody) | {"accepted_at": None} == {
        "id": "w2", "status": "completed", "status_url": "/api/events/w2", "type": "unrouted", "kind": "event",
        "accepted_at": None, "targets": [], "results": []}


@pytest.mark.parametrize("raw", ["\u0665", "1_0", "-1", "nan", "inf", "soon"])  # \u0665: Arabic-Indic 5
async def test_a_wait_that_is_no_plain_number_of_seconds_is_a_400_and_accepts_nothing(
        raw: str, durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    refused = await call("post_events", "POST", body={"id": "w3", "source": "c", "type": "ping"},
                         params={"wait": raw}, durable=durable)
    assert refused.status_code == 400
    assert "wait must be a number of seconds" in body_of(refused)["detail"]
    assert durable.signals == []
    assert (await call("get_event", route={"id": "w3"})).status_code == 404


async def test_a_direct_message_reaches_one_agent(durable: SignalRecorder) -> None:
    await register("t1")
    await register("t2")
    sent = await call("post_message", "POST", route={"agent_id": "t2"}, body={"id": "m1", "type": "hello"},
                      durable=durable)
    assert sent.status_code == 202
    assert [(s.key, s.input["subject"]) for s in durable.signals] == [("t2", "t2")]
    await deliver_signals(durable, {})
    done = body_of(await call("get_event", route={"id": "m1"}))
    assert (done["kind"], done["status"], done["targets"]) == ("message", "completed", ["t2"])


async def test_batches_are_accepted_per_event(durable: SignalRecorder) -> None:
    batch = [{"id": f"b{n}", "source": "c", "type": "nobody.listens"} for n in range(3)]
    response = await call("post_events", "POST", body=batch, params={"wait": "1"}, durable=durable)
    assert response.status_code == 200
    assert [i["id"] for i in body_of(response)["items"]] == ["b0", "b1", "b2"]


async def test_agents_are_listed_shown_and_terminated(durable: SignalRecorder) -> None:
    await register("t1")
    listed = body_of(await call("list_agents", params={"capability": "count"}))
    assert [a["id"] for a in listed["agents"]] == ["t1"]
    assert body_of(await call("list_agents", params={"capability": "nothing"}))["agents"] == []
    shown = body_of(await call("get_agent", route={"agent_id": "t1"}))
    assert (shown["type"], shown["state"]) == ("tally", "created")
    gone = await call("delete_agent", "DELETE", route={"agent_id": "t1"}, durable=durable)
    assert gone.status_code == 200 and body_of(gone)["state"] == "terminated"
    again = await call("create_agent", "POST", body={"type": "tally", "id": "t1"})
    assert again.status_code == 409


BAD_REQUESTS = [
    ("post_events", "POST", {}, b"{not json", 400),
    ("post_events", "POST", {}, b"", 400),
    ("post_events", "POST", {}, json.dumps({"id": "x", "source": "s"}).encode(), 400),  # no type
    ("post_events", "POST", {}, json.dumps({"type": "a", "specversion": "0.3"}).encode(), 400),
    ("post_events", "POST", {}, b"[]", 400),
    ("create_agent", "POST", {}, json.dumps({"type": "nope", "id": "n1"}).encode(), 400),
    ("create_agent", "POST", {}, json.dumps({"type": "tally", "id": "Bad Id"}).encode(), 400),
    ("create_agent", "POST", {}, json.dumps({"type": "tally", "id": "n1", "extra": 1}).encode(), 400),
    ("create_agent", "POST", {}, json.dumps({"type": "tally", "id": "t1", "config": {"x": 1}}).encode(), 409),
    ("get_agent", "GET", {"agent_id": "missing"}, b"", 404),
    ("get_agent", "GET", {"agent_id": "NOT valid"}, b"", 400),
    ("get_context", "GET", {"agent_id": "missing"}, b"", 404),
    ("delete_agent", "DELETE", {"agent_id": "missing"}, b"", 404),
    ("post_message", "POST", {"agent_id": "missing"}, json.dumps({"type": "hi"}).encode(), 404),
    ("post_message", "POST", {"agent_id": "t1"}, json.dumps({"data": 1}).encode(), 400),
    ("get_event", "GET", {"id": "never"}, b"", 404),
]


@pytest.mark.parametrize(("name", "method", "route", "raw", "status"), BAD_REQUESTS)
async def test_bad_input_is_a_problem_and_changes_nothing(name: str, method: str, route: dict[str, str],
                                                          raw: bytes, status: int) -> None:
    await register("t1")
    before = body_of(await call("list_agents"))
    response = await call(name, method, route=route, raw=raw)
    assert response.status_code == status, response.get_body()
    assert response.mimetype == "application/problem+json"
    problem = body_of(response)
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert body_of(await call("list_agents")) == before


async def test_limits_on_body_size_and_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_API__MAX_BODY_BYTES", "100")
    big = {"id": "big", "source": "c", "type": "t", "data": "x" * 200}
    assert (await call("post_events", "POST", body=big)).status_code == 413
    small = {"id": "ok", "source": "c", "type": "t"}
    for wait in ("31", "-1", "soon", "nan"):
        assert (await call("post_events", "POST", body=small, params={"wait": wait})).status_code == 400
    assert (await call("get_event", route={"id": "big"})).status_code == 404


async def test_roles_from_the_principal_and_from_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"id": "r1", "source": "c", "type": "t"}
    monkeypatch.setenv("AOS_AUTH__TRUST_PRINCIPAL_HEADER", "true")
    reader = {"x-ms-client-principal": principal("reader")}
    denied = await call("post_events", "POST", body=event, headers=reader)
    assert denied.status_code == 403 and "operator" in body_of(denied)["detail"]
    assert (await call("get_event", route={"id": "r1"})).status_code == 404  # nothing was accepted
    assert (await call("list_agents", headers=reader)).status_code == 200
    operator = {"x-ms-client-principal": principal("operator")}
    assert (await call("post_events", "POST", body=event, headers=operator)).status_code == 202
    no_admin = await call("create_agent", "POST", body={"type": "tally", "id": "x1"}, headers=operator)
    assert no_admin.status_code == 403
    for value in (b"%%%", b'["admin"]', b"[" * 5000 + b"]" * 5000):  # not JSON, not an object, too deep
        garbled = await call("list_agents", headers={"x-ms-client-principal": base64.b64encode(value).decode()})
        assert garbled.status_code == 401 and body_of(garbled)["title"] == "Unauthorized"


async def test_the_principal_header_is_ignored_unless_app_service_auth_is_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_AUTH__KEY_ROLES", "reader")
    forged = {"x-ms-client-principal": principal("admin")}
    response = await call("create_agent", "POST", body={"type": "tally", "id": "x1"}, headers=forged)
    assert response.status_code == 403  # the key's roles apply: a forged header grants nothing
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    runtime.reset_aos()
    assert (await call("create_agent", "POST", body={"type": "tally", "id": "x1"}, headers=forged)).status_code == 201


async def test_a_bad_setting_makes_every_route_a_503_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AOS_DISPATCH__MAX_LIVE_AGENTS", "many")
    response = await call("health")
    assert response.status_code == 503
    assert "AOS_DISPATCH__MAX_LIVE_AGENTS" in body_of(response)["detail"]


async def test_a_failed_signal_is_a_503_and_the_event_stays_pending(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["ping"])
    durable.fail = True
    event = {"id": "f1", "source": "c", "type": "ping"}
    response = await call("post_events", "POST", body=event, durable=durable)
    assert response.status_code == 503 and response.headers["Retry-After"]
    durable.fail = False
    again = await call("post_events", "POST", body=event, durable=durable)
    assert again.status_code == 202 and [s.key for s in durable.signals] == ["t1"]


# --- Service Bus ----------------------------------------------------------------------------------------------


def bus_message(body: bytes, *, message_id: str, content_type: str | None = None,
                properties: dict[str, Any] | None = None, delivery_count: int = 1) -> ServiceBusMessage:
    return ServiceBusMessage(body=body, message_id=message_id, content_type=content_type,
                             application_properties=properties or {}, delivery_count=delivery_count,
                             user_properties=properties or {})


async def call_topic(name: str, message: ServiceBusMessage, durable: SignalRecorder) -> None:
    await functions()[name].get_user_function()(message=message, client=durable.client_binding())


async def test_a_topic_message_is_routed_once_even_when_redelivered(durable: SignalRecorder) -> None:
    await register("t1", subscribe=["invoice.*"])
    event = {"specversion": "1.0", "id": "sb-1", "source": "erp", "type": "invoice.paid", "data": {"eur": 5}}
    message = bus_message(json.dumps(event).encode(), message_id="sb-1",
                          content_type="application/cloudevents+json")
    await call_topic("events_topic", message, durable)
    await call_topic("events_topic", bus_message(message.get_body(), message_id="sb-1",
                                                 content_type="application/cloudevents+json", delivery_count=2),
                     durable)
    assert [s.input["id"] for s in durable.signals] == ["sb-1"]  # its entity holds it: not queued twice
    states: dict[str, Any] = {}
    await deliver_signals(durable, states)
    assert body_of(await call("get_context", route={"agent_id": "t1"}))["state"]["total"] == 1


async def test_a_binary_mode_message_on_the_messages_topic_goes_to_its_subject(durable: SignalRecorder) -> None:
    await register("t1")
    props = {"cloudEvents_type": "note", "cloudEvents_source": "crm", "cloudEvents_subject": "t1"}
    await call_topic("messages_topic", bus_message(b'{"text": "hi"}', message_id="m-9", properties=props), durable)
    [signal] = durable.signals
    assert (signal.key, signal.input["id"], signal.input["data"]) == ("t1", "m-9", {"text": "hi"})


async def test_a_poison_message_is_dead_lettered_at_once_recorded_and_audited(durable: SignalRecorder) -> None:
    # The function returns (the message completes): no later delivery could decode it.
    await call_topic("events_topic", bus_message(b"\xff garbage", message_id="p-1",
                                                 content_type="application/cloudevents+json"), durable)
    docs = await runtime.with_aos(lambda aos: aos.store.list("deadletters/"))
    assert [(d.value["message_id"], d.value["reason"]) for d in docs] == [
        ("p-1", "body is not acceptable JSON: the body is not valid UTF-8 (byte 0xff at offset 0)")]
    audit = await runtime.with_aos(lambda aos: aos.audit.entries(action="message.deadlettered"))
    assert [e.payload["message_id"] for e in audit] == ["p-1"]
    assert durable.signals == []


async def test_a_direct_message_to_an_unknown_agent_is_dead_lettered_at_once(durable: SignalRecorder) -> None:
    props = {"cloudEvents_type": "note", "cloudEvents_source": "crm", "cloudEvents_subject": "nobody"}
    await call_topic("messages_topic", bus_message(b"{}", message_id="m-404", properties=props), durable)
    docs = await runtime.with_aos(lambda aos: aos.store.list("deadletters/"))
    assert [d.value["message_id"] for d in docs] == ["m-404"] and "unknown agent" in docs[0].value["reason"]
    assert durable.signals == []


# --- timer -------------------------------------------------------------------------------------------------


async def test_the_timer_fires_due_schedules_and_catches_up_once(monkeypatch: pytest.MonkeyPatch,
                                                                 durable: SignalRecorder) -> None:
    monkeypatch.setenv("AOS_SCHEDULES", json.dumps([
        {"id": "nightly", "cron": "0 0 0 * * *", "event_type": "report.nightly", "subject": "t1"}]))
    await register("t1", subscribe=["report.*"])
    three_days_ago = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    await runtime.with_aos(lambda aos: aos.store.put("scheduler/nightly", {
        "last_slot": three_days_ago.isoformat(), "fired_at": three_days_ago.isoformat()}))
    timer = TimerRequest(past_due=True)
    await functions()["tick"].get_user_function()(timer=timer, client=durable.client_binding())
    await functions()["tick"].get_user_function()(timer=timer, client=durable.client_binding())
    [signal] = durable.signals  # three missed nights, one catch-up event
    assert signal.input["type"] == "report.nightly" and signal.input["data"]["past_due"] is True


# --- the entity ---------------------------------------------------------------------------------------------


async def test_entity_operations_validate_before_they_change_state() -> None:
    await register("t1")
    state = {"agent_id": "t1", "type": "tally", "lifecycle": "running", "version": 3, "delivered": 3,
             "recent": ["a", "b", "c"]}
    bad = run_entity("t1", state, [("deliver", {"type": ""})])
    assert bad["results"][0]["isError"] is True
    assert bad["state"] == state  # unchanged
    unknown = run_entity("t1", state, [("explode", None)])
    assert unknown["results"][0]["isError"] is True and unknown["state"] == state
    status = run_entity("t1", state, [("status", None)])
    assert json.loads(status["results"][0]["result"])["agent"]["id"] == "t1"
    ended = run_entity("t1", state, [("terminate", None)])
    assert ended["state"]["lifecycle"] == "terminated"
    assert body_of(await call("get_agent", route={"agent_id": "t1"}))["state"] == "terminated"


async def test_an_entity_waits_out_a_storage_outage_instead_of_failing_its_events(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A failed operation is not delivered again: were the outage to fail it, its events would stay pending for good.
    await register("t1")
    store = await runtime.with_aos(_store_of)
    real_put, refusals = store.put, [3]

    async def put(key: str, value: Any, **options: Any) -> str:
        if refusals[0] and key.startswith("context/t1"):
            refusals[0] -= 1
            raise StorageUnavailableError("storage unavailable: database or disk is full (simulated)")
        return await real_put(key, value, **options)

    monkeypatch.setattr(store, "put", put)
    monkeypatch.setattr(durable_dispatch, "outage_pauses", lambda: itertools.repeat(0.01))
    out = run_entity("t1", None, [("deliver", {"id": "e-outage", "source": "c", "type": "ping"})])
    assert out["results"][0]["isError"] is False and refusals == [0]
    assert json.loads(out["results"][0]["result"])["status"] == "completed"
    assert out["state"]["delivered"] == 1
    context = await runtime.with_aos(lambda aos: aos.read_context("t1"))
    assert context is not None and context["state"]["total"] == 1


async def _store_of(aos: Any) -> Any:
    return aos.store


async def test_an_entity_batch_applies_each_event_in_order() -> None:
    await register("t1")
    events = [{"id": f"e{n}", "source": "c", "type": "ping"} for n in range(5)]
    out = run_entity("t1", None, [("deliver", e) for e in [*events, events[0]]])
    statuses = [json.loads(r["result"])["status"] for r in out["results"]]
    assert statuses == ["completed"] * 5 + ["duplicate"]
    assert out["state"]["delivered"] == 6 and out["state"]["version"] == 5  # six operations, five applied


async def test_one_deliver_operation_may_carry_a_list_of_events_applied_in_order() -> None:
    # What the dispatcher signals when events to one agent waited while its previous signal was in flight.
    await register("t1")
    events = [{"id": f"l{n}", "source": "c", "type": f"ping.{n % 2}"} for n in range(4)]
    out = run_entity("t1", None, [("deliver", events), ("deliver", [events[1], {"id": "l9", "source": "c",
                                                                                 "type": "ping.0"}])])
    first, second = (json.loads(r["result"]) for r in out["results"])
    assert [r["status"] for r in first] == ["completed"] * 4
    assert [r["status"] for r in second] == ["duplicate", "completed"]  # a resent event is applied once
    assert out["state"]["delivered"] == 6 and out["state"]["version"] == 2  # the four in one commit, then one
    context = body_of(await call("get_context", route={"agent_id": "t1"}))
    assert context["state"]["by_type"] == {"ping.0": 3, "ping.1": 2}
    bad = run_entity("t1", out["state"], [("deliver", [events[0], {"type": ""}]), ("deliver", [])])
    assert all(r["isError"] for r in bad["results"]) and bad["state"] == out["state"]  # nothing applied


# --- cold start -------------------------------------------------------------------------------------------


def test_importing_the_app_loads_no_cloud_sdk_beyond_functions() -> None:
    import subprocess
    import sys

    heavy = ("azure.servicebus", "azure.storage", "azure.data.tables", "azure.identity", "azure.keyvault",
             "azure.monitor", "azure.ai.ml", "mcp")
    code = ("import sys, function_app\n"
            f"print(','.join(sorted(m for m in sys.modules if m.startswith({heavy!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import function_app loaded: {out.stdout.strip()}"
