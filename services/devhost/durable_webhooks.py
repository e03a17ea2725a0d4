"""The Durable extension's HTTP surface that azure-functions-durable's client calls, served by this host.

A `durableClient` binding gets the same JSON the extension gives (`taskHubName`, `creationUrls`,
`managementUrls`, `rpcBaseUrl`, ...), with `rpcBaseUrl` pointing here, so `DurableOrchestrationClient` runs
unchanged. Implemented: signal an entity (`POST entities/{name}/{key}?op=...` -> 202) and read its state
(`GET entities/{name}/{key}` -> 200 with the state, or 404). Everything else (orchestrations, entity
queries) answers 501 saying so.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response

from aos_core.errors import NotFoundError
from services.devhost.entities import EntityHost
from services.devhost.http_trigger import key_matches, presented_key, problem
from services.devhost.settings import HostSettings

WEBHOOK_PATH = "/runtime/webhooks/durabletask/"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def client_binding(settings: HostSettings, task_hub: str | None = None) -> str:
    """The durableClient binding JSON for one invocation."""
    base = f"{settings.base_url}{WEBHOOK_PATH}"
    hub = task_hub or settings.task_hub
    query = f"taskHub={hub}&connection=Storage&code={settings.master_key}"
    instance = base + "instances/INSTANCEID"
    return json.dumps({
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{base}orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
            "createAndWaitOnNewInstancePostUri":
                f"{base}orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                f"&pollingInterval={{intervalInSeconds}}&{query}"},
        "managementUrls": {
            "id": "INSTANCEID", "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}"},
        "baseUrl": base, "requiredQueryStringParameters": query, "rpcBaseUrl": base,
        "httpBaseUrl": "", "maxGrpcMessageSizeInBytes": 0, "grpcHttpClientTimeout": "00:01:40"})


class DurableWebhooks:
    def __init__(self, entities: EntityHost, settings: HostSettings) -> None:
        self._entities = entities
        self._settings = settings

    def _trusted(self, request: Request) -> bool:
        # The real extension serves these to its own worker on localhost; elsewhere ask for the master key.
        client = request.client.host if request.client else ""
        return client in _LOOPBACK or key_matches(presented_key(request), self._settings.master_key)

    async def handle(self, request: Request, path: str) -> Response:
        if not self._trusted(request):
            return problem(401, "Unauthorized", "the Durable webhooks need the master key from off this machine")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] == "entities" and len(parts) == 3:
            name, key = parts[1], parts[2]
            try:
                self._entities.function_for(name)
            except NotFoundError as exc:
                return problem(404, "Not Found", str(exc))
            if request.method == "POST":
                return await self._signal(request, name, key)
            if request.method == "GET":
                state = await self._entities.read_state(name, key)
                if state is None:
                    return problem(404, "Not Found", f"entity @{name.lower()}@{key} does not exist")
                return Response(state, media_type="application/json")
            return problem(405, "Method Not Allowed", "entities take GET (read state) and POST (signal)")
        return problem(501, "Not Implemented",
                       f"the local host implements the entity webhooks only (signal and read state), not "
                       f"{request.method} {WEBHOOK_PATH}{path}; orchestrations need `func start` with Core Tools")

    async def _signal(self, request: Request, name: str, key: str) -> Response:
        operation = request.query_params.get("op")
        if not operation:
            return problem(400, "Bad Request", "a signal needs the operation name in the `op` query parameter")
        body = await request.body()
        text: str | None = None
        if body.strip():
            try:
                text = body.decode()
                json.loads(text)
            except (UnicodeDecodeError, json.JSONDecodeError):
                return problem(400, "Bad Request", "the operation input must be JSON")
        request_id = await self._entities.signal(name, key, operation, text)
        return Response(status_code=202, headers={"x-ms-request-id": request_id})


def describe_entities(rows: list[Any]) -> list[dict[str, Any]]:
    return [{"name": r.name, "key": r.key, "exists": r.exists, "operations": r.operations, "pending": r.pending,
             "last_error": r.last_error, "state": r.state} for r in rows]
