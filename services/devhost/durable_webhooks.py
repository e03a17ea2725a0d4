"""The Durable extension's HTTP surface that azure-functions-durable's client calls, served by this host.

A `durableClient` binding gets the same JSON the extension gives (`taskHubName`, `creationUrls`,
`managementUrls`, `rpcBaseUrl`, ...), with `rpcBaseUrl` pointing here, so `DurableOrchestrationClient` runs
unchanged.

Every webhook needs the host's system key (the extension's `durabletask_extension` key) or its master key,
from any address, unless `AOS_DEVHOST__OPEN_WEBHOOKS` opens them for local development; so an entity only
ever gets what the app's own client sends, after the kernel has recorded and audited it. The binding carries
the key as the real host does, as `code=` in `requiredQueryStringParameters` and in every management URL.
azure-functions-durable 1.x builds its calls from `rpcBaseUrl` alone and appends none of those (on Azure
`rpcBaseUrl` is the extension's loopback-only listener, which takes no key); so the key is also given as the
credentials of `rpcBaseUrl`, which aiohttp sends as an HTTP Basic `Authorization` header.

Implemented: signal an entity (`POST entities/{name}/{key}?op=...` -> 202), read its state
(`GET entities/{name}/{key}` -> 200 with the state, or 404), and the orchestration webhooks
(`orchestration_webhooks`: start, status, list, raise event, terminate, purge). The rest (rewind, suspend,
resume, restart, entity queries) answers 501 saying so.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, unquote

from starlette.requests import Request
from starlette.responses import Response

from aos_core import strict_json
from aos_core.errors import NotFoundError
from services.devhost.entities import EntityHost
from services.devhost.http_trigger import key_matches, presented_key
from services.devhost.limits import BodyRejected, read_body
from services.devhost.orchestration_webhooks import OrchestrationWebhooks
from services.devhost.problem import problem
from services.devhost.settings import HostSettings

WEBHOOK_PATH = "/runtime/webhooks/durabletask/"
SYSTEM_KEY_NAME = "durabletask_extension"  # the name of the real host's system key for these webhooks


def _query(settings: HostSettings, task_hub: str | None) -> str:
    return f"taskHub={task_hub or settings.task_hub}&connection=Storage&code={quote(settings.durable_key, safe='')}"


def management_urls(settings: HostSettings, instance_id: str, task_hub: str | None = None) -> dict[str, str]:
    """The extension's management URLs of one instance (`INSTANCEID` in the binding's template)."""
    query = _query(settings, task_hub)
    instance = f"{settings.base_url}{WEBHOOK_PATH}instances/{quote(instance_id, safe='')}"
    return {"id": instance_id, "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}"}


def client_binding(settings: HostSettings, task_hub: str | None = None) -> str:
    """The durableClient binding JSON for one invocation."""
    base = f"{settings.base_url}{WEBHOOK_PATH}"
    hub = task_hub or settings.task_hub
    key = settings.durable_key
    query = _query(settings, task_hub)
    rpc_base = base.replace("://", f"://{SYSTEM_KEY_NAME}:{quote(key, safe='')}@", 1)
    return json.dumps({
        "taskHubName": hub,
        "creationUrls": {
            "createNewInstancePostUri": f"{base}orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
            "createAndWaitOnNewInstancePostUri":
                f"{base}orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                f"&pollingInterval={{intervalInSeconds}}&{query}"},
        "managementUrls": management_urls(settings, "INSTANCEID", task_hub),
        "baseUrl": base, "requiredQueryStringParameters": query, "rpcBaseUrl": rpc_base,
        "httpBaseUrl": "", "maxGrpcMessageSizeInBytes": 0, "grpcHttpClientTimeout": "00:01:40"})


class DurableWebhooks:
    def __init__(self, entities: EntityHost, settings: HostSettings,
                 orchestrations: OrchestrationWebhooks | None = None) -> None:
        self._entities = entities
        self._settings = settings
        self._orchestrations = orchestrations

    def _trusted(self, request: Request) -> bool:
        settings = self._settings
        return settings.open_webhooks or key_matches(presented_key(request, basic=True), settings.durable_key,
                                                     settings.master_key)

    async def handle(self, request: Request, path: str) -> Response:
        if not self._trusted(request):
            return problem(401, "Unauthorized", "the Durable webhooks need the host's system key or master key")
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
        if self._orchestrations is not None:
            response = await self._orchestrations.handle(request, parts)
            if response is not None:
                return response
        return problem(501, "Not Implemented",
                       f"the local host does not implement {request.method} {WEBHOOK_PATH}{path} (rewind, suspend, "
                       f"resume, restart and entity queries need `func start` with Core Tools)")

    async def _signal(self, request: Request, name: str, key: str) -> Response:
        operation = request.query_params.get("op")
        if not operation:
            return problem(400, "Bad Request", "a signal needs the operation name in the `op` query parameter")
        try:
            body = await read_body(request, self._settings.max_body_bytes, self._settings.body_timeout)
        except BodyRejected as exc:
            return exc.response()
        text: str | None = None
        if body.strip():
            try:
                strict_json.loads(body)
            except strict_json.JsonRejected as exc:
                return problem(400, "Bad Request", f"the operation input is not acceptable JSON: {exc}")
            text = body.decode()
        request_id = await self._entities.signal(name, key, operation, text)
        return Response(status_code=202, headers={"x-ms-request-id": request_id})


def describe_entities(rows: list[Any]) -> list[dict[str, Any]]:
    return [{"name": r.name, "key": r.key, "exists": r.exists, "operations": r.operations, "pending": r.pending,
             "last_error": r.last_error, "state": r.state} for r in rows]
