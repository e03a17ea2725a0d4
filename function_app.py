"""AOS on Azure Functions (Python v2 model): triggers only. Each one decodes its input and calls the kernel.

HTTP routes live under /api (host.json routePrefix) and map to operations of the host-neutral API
(`aos_core.api`, plus the governance and MCP areas); the Service Bus topics and the timer read their names
and schedule from app settings; every perpetual agent is the Durable entity `agent/<id>`.
"""

from __future__ import annotations

import azure.durable_functions as df
import azure.functions as func

from aos_core import api
from aos_core.runtime import with_aos
from services.context import routes as context_routes
from services.dashboard import dashboard_page
from services.dispatch import ENTITY_NAME, durable_client, run_agent_entity
from services.governance import routes as governance_routes
from services.learning import routes as learning_routes
from services.mcp import route as mcp_route
from services.messaging import routes as messaging_routes
from services.messaging.topic_trigger import receive_topic_message
from services.workflows.functions import bp as workflow_functions

# Importing these adds their operations to the API (the mcp package itself loads on the first MCP request).
API_AREAS = (governance_routes, learning_routes, messaging_routes, mcp_route, context_routes)

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(workflow_functions)  # the aos_workflow orchestrator and its activity


async def _serve(req: func.HttpRequest, operation: str, client: df.DurableOrchestrationClient | None = None
                 ) -> func.HttpResponse:
    request = api.ApiRequest.from_http(req)
    try:
        with durable_client(client):  # how this invocation reaches entities; the kernel always goes through them
            response = await with_aos(lambda aos: api.handle(aos, operation, request))
    except Exception as exc:  # the kernel could not start: say why (a bad setting names itself)
        response = api.startup_failure(exc)
    return func.HttpResponse(response.body_bytes(), status_code=response.status, headers=response.headers,
                             mimetype=response.media_type)


# Operations that read or change only what the kernel stores: (function and operation name, route, methods).
_PLAIN_ROUTES = [
    ("openapi", "openapi.json", ["GET"]),
    ("get_event", "events/{id}", ["GET"]),
    ("list_agents", "agents", ["GET"]),
    ("create_agent", "agents", ["POST"]),
    ("get_agent", "agents/{agent_id}", ["GET"]),
    ("get_context", "agents/{agent_id}/context", ["GET"]),
    ("get_turns", "agents/{agent_id}/turns/{event_id}", ["GET"]),
    ("list_audit", "audit", ["GET"]),
    ("verify_audit", "audit/verify", ["GET"]),
    ("list_risks", "risks", ["GET"]),
    ("create_risk", "risks", ["POST"]),
    ("get_risk", "risks/{risk_id}", ["GET"]),
    ("update_risk", "risks/{risk_id}", ["PATCH"]),
    ("close_risk", "risks/{risk_id}", ["DELETE"]),
    ("list_decisions", "decisions", ["GET"]),
    ("get_decision", "decisions/{decision_id}", ["GET"]),
    ("post_feedback", "decisions/{decision_id}/feedback", ["POST"]),
    ("list_feedback", "decisions/{decision_id}/feedback", ["GET"]),
    ("list_deadletters", "deadletters", ["GET"]),
]


def _plain_route(operation: str, route: str, methods: list[str]) -> None:
    async def handler(req: func.HttpRequest) -> func.HttpResponse:
        return await _serve(req, operation)

    handler.__name__ = handler.__qualname__ = operation
    app.function_name(operation)(app.route(route=route, methods=methods)(handler))


for _operation, _route, _methods in _PLAIN_ROUTES:
    _plain_route(_operation, _route, _methods)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "health")


@app.route(route="dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    # The page is public; the data it shows comes from the API with the key the user gives the page.
    body, headers = dashboard_page()
    return func.HttpResponse(body, headers=headers, mimetype="text/html", charset="utf-8")


# Operations that may reach perpetual agents get a Durable client to signal their entities; workflow operations
# get one to start, query, signal and terminate their orchestrations.
_CLIENT_ROUTES = [
    ("start_workflow", "workflows", ["POST"]),
    ("get_workflow", "workflows/{workflow_id}", ["GET"]),
    ("terminate_workflow", "workflows/{workflow_id}", ["DELETE"]),
    ("raise_workflow_event", "workflows/{workflow_id}/events/{name}", ["POST"]),
]


def _client_route(operation: str, route: str, methods: list[str]) -> None:
    async def handler(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
        return await _serve(req, operation, client)

    handler.__name__ = handler.__qualname__ = operation
    app.function_name(operation)(app.route(route=route, methods=methods)(
        app.durable_client_input(client_name="client")(handler)))


for _operation, _route, _methods in _CLIENT_ROUTES:
    _client_route(_operation, _route, _methods)


@app.route(route="events", methods=["POST"])
@app.durable_client_input(client_name="client")
async def post_events(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _serve(req, "post_events", client)


@app.route(route="agents/{agent_id}/messages", methods=["POST"])
@app.durable_client_input(client_name="client")
async def post_message(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _serve(req, "post_message", client)


@app.route(route="mcp", methods=["GET", "POST", "DELETE"])
@app.durable_client_input(client_name="client")
async def mcp(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _serve(req, "mcp", client)


@app.route(route="agents/{agent_id}", methods=["DELETE"])
@app.durable_client_input(client_name="client")
async def delete_agent(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await _serve(req, "delete_agent", client)


@app.service_bus_topic_trigger(arg_name="message", topic_name="%AOS_EVENTS_TOPIC%",
                               subscription_name="%AOS_EVENTS_SUBSCRIPTION%", connection="ServiceBusConnection")
@app.durable_client_input(client_name="client")
async def events_topic(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    with durable_client(client):
        await receive_topic_message(message)


@app.service_bus_topic_trigger(arg_name="message", topic_name="%AOS_MESSAGES_TOPIC%",
                               subscription_name="%AOS_MESSAGES_SUBSCRIPTION%", connection="ServiceBusConnection")
@app.durable_client_input(client_name="client")
async def messages_topic(message: func.ServiceBusMessage, client: df.DurableOrchestrationClient) -> None:
    with durable_client(client):
        await receive_topic_message(message, direct=True)


@app.timer_trigger(arg_name="timer", schedule="%AOS_TICK_SCHEDULE%", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    with durable_client(client):
        await with_aos(api.tick)


@app.entity_trigger(context_name="context", entity_name=ENTITY_NAME)
def agent(context: df.DurableEntityContext) -> None:
    run_agent_entity(context)
