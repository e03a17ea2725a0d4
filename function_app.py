"""AOS on Azure Functions (Python v2 model): triggers only. Each one decodes its input and calls the kernel.

Every HTTP route under /api (host.json routePrefix) is one declared operation (`aos_core.operations`): the
kernel's and each area's tuple of them, composed into `API`, give both the Functions below and the OpenAPI
document. The Service Bus topics and the timer read their names and schedule from app settings; every
perpetual agent is the Durable entity `agent/<id>`. Only declarations are imported here: handlers, models,
the kernel and the Azure SDKs load on first use, so indexing the app (cold start) stays cheap.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from types import ModuleType
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from aos_core.api_operations import OPERATIONS as KERNEL
from aos_core.operations import HttpApi, HttpOperation, resolve
from services.context.operations import OPERATIONS as CONTEXT
from services.dashboard.operations import OPERATIONS as DASHBOARD
from services.governance.operations import OPERATIONS as GOVERNANCE
from services.learning.operations import OPERATIONS as LEARNING
from services.mcp.operations import OPERATIONS as MCP
from services.messaging.operations import OPERATIONS as MESSAGING
from services.workflows.functions import bp as workflow_functions
from services.workflows.operations import OPERATIONS as WORKFLOWS

API = HttpApi.compose(KERNEL, GOVERNANCE, LEARNING, MESSAGING, MCP, CONTEXT, WORKFLOWS, DASHBOARD)
ENTITY_NAME = "agent"  # services.dispatch.ENTITY_NAME, the entity its dispatcher signals (a test checks both)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(workflow_functions)  # the aos_workflow orchestrator and its activity


@functools.cache
def _request_path() -> tuple[ModuleType, Callable[..., Awaitable[Any]], Callable[..., AbstractContextManager[Any]]]:
    """What serves an HTTP request: imported by the first request, not when the app is indexed (cold start), and
    kept (an import statement per request costs a few microseconds of a health check's hundred)."""
    from aos_core import api
    from aos_core.runtime import with_aos
    from services.dispatch import durable_client

    return api, with_aos, durable_client


async def _serve(req: func.HttpRequest, op: HttpOperation, client: df.DurableOrchestrationClient | None = None
                 ) -> func.HttpResponse:
    api, with_aos, durable_client = _request_path()
    request = api.ApiRequest.from_http(req, API)
    in_memory = op.in_memory is not None and resolve(op.in_memory)(request)
    try:
        if client is None:  # an operation that never reaches entities (nor the durable client's session)
            response = await with_aos(lambda aos: api.handle(aos, op, request), in_memory=in_memory)
        else:
            with durable_client(client):  # how this invocation reaches entities; the kernel goes through them
                response = await with_aos(lambda aos: api.handle(aos, op, request), in_memory=in_memory)
    except Exception as exc:  # the kernel could not start: say why (a bad setting names itself)
        response = api.startup_failure(exc)
    return func.HttpResponse(response.body_bytes(), status_code=response.status, headers=response.headers,
                             mimetype=response.media_type)


def _http_function(op: HttpOperation) -> None:
    """The Function for one operation: its route, methods and auth level, a Durable client when it needs one."""
    if op.durable_client:
        async def with_client(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
            return await _serve(req, op, client)

        handler = app.durable_client_input(client_name="client")(with_client)
    else:
        async def plain(req: func.HttpRequest) -> func.HttpResponse:
            return await _serve(req, op)

        handler = plain
    level = func.AuthLevel.ANONYMOUS if op.role is None else func.AuthLevel.FUNCTION
    app.function_name(op.name)(app.route(route=op.route, methods=list(op.methods), auth_level=level)(handler))


for _operation in API.operations:
    _http_function(_operation)


@app.service_bus_topic_trigger(arg_name="message", topic_name="%AOS_EVENTS_TOPIC%",
                               subscription_name="%AOS_EVENTS_SUBSCRIPTION%", connection="ServiceBusConnection")
@app.durable_client_input(client_name="client")
async def events_topic(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    await _receive(message, client, direct=False)


@app.service_bus_topic_trigger(arg_name="message", topic_name="%AOS_MESSAGES_TOPIC%",
                               subscription_name="%AOS_MESSAGES_SUBSCRIPTION%", connection="ServiceBusConnection")
@app.durable_client_input(client_name="client")
async def messages_topic(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    await _receive(message, client, direct=True)


async def _receive(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient, *, direct: bool) -> None:
    from aos_core.runtime import with_aos
    from services.dispatch import durable_client
    from services.messaging.topic_trigger import receive_topic_message

    with durable_client(client):  # the warm kernel is handed to the code the trigger calls
        await with_aos(lambda aos: receive_topic_message(aos, message, direct=direct))


@app.timer_trigger(arg_name="timer", schedule="%AOS_TICK_SCHEDULE%", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    from aos_core import api
    from aos_core.runtime import with_aos
    from services.dispatch import durable_client

    with durable_client(client):
        await with_aos(api.tick)


@app.entity_trigger(context_name="context", entity_name=ENTITY_NAME)
def agent(context: df.DurableEntityContext) -> None:
    from aos_core.runtime import run_with_aos
    from services.dispatch import run_agent_entity

    run_agent_entity(context, run_with_aos)  # the entity body runs on the worker's warm kernel
