"""A small v2-model function app covering what the local host must run: HTTP (route parameters, constraints,
methods, auth levels, sync and async), a timer, a Service Bus topic trigger, a Durable entity and a client."""

from __future__ import annotations

import json
import threading
from typing import Any

import azure.durable_functions as df
import azure.functions as func


class Calls:
    """What the app's functions saw, for the tests to assert on."""

    def __init__(self) -> None:
        self.timer: list[bool] = []  # past_due of each timer run
        self.messages: list[dict[str, Any]] = []
        self.gate = threading.Event()


def build_app() -> tuple[df.DFApp, Calls]:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    calls = Calls()

    @app.route(route="hello/{name:alpha}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(f"hello {req.route_params['name']}", headers={"x-greeting": "yes"})

    @app.route(route="items/{id:int}", methods=["GET"])
    async def get_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"id": int(req.route_params["id"])}), mimetype="application/json")

    @app.route(route="items/{id:int}", methods=["DELETE"], auth_level=func.AuthLevel.ADMIN)
    async def delete_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(status_code=204)

    @app.route(route="items/new", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def new_item(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("literal wins")

    @app.route(route="echo", methods=["POST", "PUT"], auth_level=func.AuthLevel.ANONYMOUS)
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        try:
            body = req.get_json()
        except ValueError:
            return func.HttpResponse("malformed JSON", status_code=400)
        out = {"method": req.method, "query": dict(req.params), "header": req.headers.get("x-test"), "body": body}
        return func.HttpResponse(json.dumps(out), status_code=201, mimetype="application/json")

    @app.route(route="files/{*path}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def files(req: func.HttpRequest) -> str:
        return req.route_params.get("path", "")

    @app.route(route="block", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def block(req: func.HttpRequest) -> func.HttpResponse:
        released = calls.gate.wait(timeout=10)  # a slow sync call: must not block the server
        return func.HttpResponse("released" if released else "timed out")

    @app.route(route="release", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    async def release(req: func.HttpRequest) -> func.HttpResponse:
        calls.gate.set()
        return func.HttpResponse("ok")

    @app.route(route="boom", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("secret internals")

    @app.timer_trigger(arg_name="timer", schedule="%SAMPLE_SCHEDULE%", run_on_startup=False)
    def beat(timer: func.TimerRequest) -> None:
        calls.timer.append(timer.past_due)

    @app.service_bus_topic_trigger(arg_name="msg", topic_name="%SAMPLE_TOPIC%", subscription_name="sub",
                                   connection="ServiceBusConnection")
    async def on_message(msg: func.ServiceBusMessage) -> None:
        event = json.loads(msg.get_body())
        if event["type"] == "poison":
            raise ValueError("cannot digest this")
        calls.messages.append({"id": msg.message_id, "correlation_id": msg.correlation_id,
                               "delivery_count": msg.delivery_count, "type": event["type"],
                               "properties": dict(msg.application_properties), "enqueued": msg.enqueued_time_utc})

    @app.entity_trigger(context_name="context", entity_name="Counter")
    def counter(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0, expected_type=int)
        op = context.operation_name
        if op == "add":
            value += context.get_input(expected_type=int)
        elif op == "reset":
            value = 0
        elif op == "fail":
            raise ValueError("this operation always fails")
        context.set_state(value)
        context.set_result(value)

    @app.route(route="count/{key}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.durable_client_input(client_name="client")
    async def count_add(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        op = req.params.get("op", "add")
        await client.signal_entity(df.EntityId("Counter", req.route_params["key"]), op, req.get_json())
        return func.HttpResponse(status_code=202)

    @app.route(route="count/{key}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.durable_client_input(client_name="client")
    async def count_read(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        state = await client.read_entity_state(df.EntityId("Counter", req.route_params["key"]))
        if not state.entity_exists:
            return func.HttpResponse("no such counter", status_code=404)
        return func.HttpResponse(json.dumps(state.entity_state), mimetype="application/json")

    @app.route(route="orchestrate", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
    @app.durable_client_input(client_name="client")
    async def orchestrate(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        try:
            await client.start_new("nothing")
        except Exception as exc:
            return func.HttpResponse(str(exc), status_code=501)
        return func.HttpResponse("started")

    return app, calls


app, calls = build_app()
