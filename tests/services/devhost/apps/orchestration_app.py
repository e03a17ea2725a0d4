"""Orchestrators written the way the Durable Functions Python docs show, and HTTP starters that use the real
client (`start_new`, `get_status`, `raise_event`, `terminate`, `purge_instance_history`, `get_status_all`).

Activities count their executions in a SQLite StateStore named by `ORCH_TEST_STORE` (one document per
`run`/`item`), so a test can tell whether any ran twice, also across a `kill -9` of the host.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from aos_core.errors import ConflictError
from services.storage.sqlite import SqliteStateStore

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


async def count_execution(key: str) -> int:
    """Add one to `runs/<key>` (ETag read-modify-write) and return the new count."""
    store = SqliteStateStore(os.environ["ORCH_TEST_STORE"])
    try:
        while True:
            doc = await store.get(f"runs/{key}")
            count = (doc.value["count"] if doc else 0) + 1
            try:
                if doc is None:
                    await store.put(f"runs/{key}", {"count": count}, if_none_match=True)
                else:
                    await store.put(f"runs/{key}", {"count": count}, if_match=doc.etag)
                return int(count)
            except ConflictError:
                continue
    finally:
        await store.close()


# --- activities ---------------------------------------------------------------------------------------------

@app.activity_trigger(input_name="item")
async def count_run(item: dict[str, Any]) -> int:
    await asyncio.sleep(item.get("sleep", 0))  # work that takes a while, so a crash can fall in the middle
    await count_execution(f"{item['run']}/{item['i']}")
    return int(item["i"])


@app.activity_trigger(input_name="value")
def double(value: int) -> int:
    return value * 2


@app.activity_trigger(input_name="run")
async def flaky(run: str) -> str:
    attempt = await count_execution(f"{run}/flaky")
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return f"succeeded on attempt {attempt}"


@app.activity_trigger(input_name="run")
async def always_fails(run: str) -> str:
    await count_execution(f"{run}/always_fails")
    raise RuntimeError("this activity always fails")


# --- orchestrators ------------------------------------------------------------------------------------------

@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    spec = context.get_input()
    tasks = [context.call_activity("count_run", {"run": spec["run"], "i": i}) for i in range(spec["n"])]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def timer_then_count(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    spec = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=spec["seconds"]))
    return (yield context.call_activity("count_run", {"run": spec["run"], "i": 0}))


@app.orchestration_trigger(context_name="context")
def everything(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    spec = context.get_input()
    doubled = yield context.task_all([context.call_activity("double", i) for i in (1, 2, 3)])
    context.set_custom_status({"stage": "timer"})
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    context.set_custom_status({"stage": "waiting for approval"})
    approval = yield context.wait_for_external_event("approval")
    total = yield context.call_entity(df.EntityId("Counter", spec["run"]), "add", sum(doubled))
    context.signal_entity(df.EntityId("Counter", spec["run"] + "-signals"), "add", 1)
    child = yield context.call_sub_orchestrator("child", 5)
    retried = yield context.call_activity_with_retry("flaky", df.RetryOptions(100, 3), spec["run"])
    try:
        yield context.call_activity_with_retry("always_fails", df.RetryOptions(50, 2), spec["run"])
        gave_up = None
    except Exception as exc:
        gave_up = str(exc).split("\n")[0].strip()
    context.set_custom_status({"stage": "done"})
    return {"doubled": doubled, "approval": approval, "total": total, "child": child, "retried": retried,
            "gave_up": gave_up}


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    return (yield context.call_activity("double", context.get_input()))


@app.orchestration_trigger(context_name="context")
def deadline(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    seconds = context.get_input()
    reply = context.wait_for_external_event("reply")
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    winner = yield context.task_any([reply, timer])
    if winner == reply:
        timer.cancel()
        return {"reply": reply.result}
    return {"reply": None, "timed_out": True}


@app.orchestration_trigger(context_name="context")
def looping(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    n = context.get_input()
    if n < 3:
        context.continue_as_new(n + 1)
        return None
    return n


@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
    yield context.call_activity("double", 1)
    raise ValueError("the orchestrator gives up")


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter(context: df.DurableEntityContext) -> None:
    value = context.get_state(lambda: 0, expected_type=int)
    if context.operation_name == "add":
        value += context.get_input(expected_type=int)
    context.set_state(value)
    context.set_result(value)


# --- HTTP starters with the real client ---------------------------------------------------------------------

def _json(value: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="start/{name}/{instance_id?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        instance_id = await client.start_new(req.route_params["name"], req.route_params.get("instance_id"),
                                             req.get_json() if req.get_body() else None)
    except Exception as exc:
        return _json({"error": str(exc)}, 400)
    return _json({"id": instance_id}, 202)


@app.route(route="status/{instance_id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    result = await client.get_status(req.route_params["instance_id"], show_history=True, show_history_output=True)
    if not result:
        return _json({"error": "not found"}, 404)
    return _json({**result.to_json(), "historyEvents": getattr(result, "historyEvents", None)})


@app.route(route="raise/{instance_id}/{event}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_event(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instance_id"], req.route_params["event"], req.get_json())
    except Exception as exc:
        return _json({"error": str(exc)}, 409)
    return _json({"raised": True}, 202)


@app.route(route="terminate/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def terminate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    await client.terminate(req.route_params["instance_id"], req.params.get("reason", "stopped"))
    return _json({"terminated": True}, 202)


@app.route(route="purge/{instance_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def purge(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    try:
        result = await client.purge_instance_history(req.route_params["instance_id"])
    except Exception as exc:
        return _json({"error": str(exc)}, 409)
    return _json({"deleted": result.instances_deleted})


@app.route(route="instances", methods=["GET"])
@app.durable_client_input(client_name="client")
async def instances(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return _json([s.to_json() for s in await client.get_status_all()])


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")
