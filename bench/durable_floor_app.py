"""The least a Functions app can do per direct message on AOS's hosted path: bench/http.py's floor round.

Not part of AOS. An HTTP function takes a message, signals a `counter` entity through the Durable client (the
SDK's HTTP call to the host, as AOS's dispatcher makes it) and answers 202 once the host has queued the signal,
as AOS answers a direct message once it is handed to its agent's entity; the entity then applies it. Nothing
else: no kernel, no event record, no audit entry, no policy, no state of its own beyond the entity's. Served by
the same local host (`aos serve --app`), so the host's work (the trigger, the signal's webhook and queue, the
entity batch and its commit) is all that is measured.
"""

from __future__ import annotations

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse('{"status": "ok"}', mimetype="application/json")


@app.route(route="agents/{agent_id}/messages", methods=["POST"])
@app.durable_client_input(client_name="client")
async def message(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    message_id = str(req.get_json()["id"])
    await client.signal_entity(df.EntityId("counter", req.route_params["agent_id"]), "add", message_id)
    answer = json.dumps({"id": message_id, "status": "pending"}, separators=(",", ":"))
    return func.HttpResponse(answer, status_code=202, mimetype="application/json")


@app.entity_trigger(context_name="context", entity_name="counter")
def counter(context: df.DurableEntityContext) -> None:
    context.set_state(context.get_state(lambda: 0) + 1)
