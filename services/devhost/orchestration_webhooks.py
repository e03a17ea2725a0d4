"""The Durable extension's orchestration webhooks, as azure-functions-durable's client calls them.

`POST orchestrators/{name}[/{instanceId}]` starts an instance (202 with the management URLs and `Location`;
400 with `ExceptionMessage` for an unknown orchestrator, as the client expects; 409 while an instance with that
id is still running; a finished one is replaced). `GET instances/{id}` is its status (200 completed, 202 pending
or running, 400 terminated, 500 failed, 404 unknown; `showHistory`, `showHistoryOutput`, `showInput`),
`GET instances/` lists them (`runtimeStatus`, `instanceIdPrefix`, `createdTimeFrom`, `createdTimeTo`),
`POST instances/{id}/raiseEvent/{name}` and `POST instances/{id}/terminate?reason=` answer 202, 404 or 410
(finished), and `DELETE instances/{id}` purges a finished instance (200 `{"instancesDeleted"}`, 404, 409 while
it runs). Rewind, suspend, resume and restart answer 501.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from aos_core import strict_json
from services.devhost import orchestration_db as odb
from services.devhost.limits import BodyRejected, read_body
from services.devhost.orchestrations import OrchestrationHost, iso
from services.devhost.problem import problem
from services.devhost.settings import HostSettings

_STATUS_CODES = {"Completed": 200, "Pending": 202, "Running": 202, "Terminated": 400, "Failed": 500}


def _json(text: str | None) -> Any:
    return json.loads(text) if text else None


def describe(instance: odb.Instance, *, show_input: bool = True) -> dict[str, Any]:
    """An instance as the extension's status query returns it."""
    body = {"name": instance.name, "instanceId": instance.instance_id, "runtimeStatus": instance.status,
            "customStatus": _json(instance.custom_status), "output": _json(instance.output),
            "createdTime": iso(instance.created), "lastUpdatedTime": iso(instance.updated)}
    if show_input:
        body["input"] = _json(instance.input)
    return body


def _flag(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    return default if value is None else value.lower() == "true"


def _time(request: Request, name: str) -> float | None:
    value = request.query_params.get(name)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


class OrchestrationWebhooks:
    def __init__(self, host: OrchestrationHost, settings: HostSettings, management_urls: Any) -> None:
        self._host = host
        self._settings = settings
        self._management_urls = management_urls  # (instance id) -> the binding's managementUrls for it

    async def handle(self, request: Request, parts: list[str]) -> Response | None:
        """The response for an orchestration webhook, or None when `parts` is not one."""
        method = request.method
        try:
            if parts[0] == "orchestrators" and len(parts) in (2, 3) and method == "POST":
                return await self._start(request, parts[1], parts[2] if len(parts) == 3 else None)
            if parts[0] != "instances":
                return None
            if len(parts) == 1 or (len(parts) == 2 and parts[1] == ""):
                return await self._list(request) if method == "GET" else await self._purge_by(request)
            instance_id = parts[1]
            if len(parts) == 2 and method == "GET":
                return await self._status(request, instance_id)
            if len(parts) == 2 and method == "DELETE":
                deleted = await self._host.db.write(lambda c: odb.purge_finished(c, instance_id))
                if not deleted:
                    return problem(404, "Not Found", f"no orchestration instance {instance_id!r}")
                return JSONResponse({"instancesDeleted": deleted})
            if len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
                return await self._raise(request, instance_id, parts[3])
            if len(parts) == 3 and parts[2] == "terminate" and method == "POST":
                await self._host.terminate(instance_id, request.query_params.get("reason"))
                return Response(status_code=202)
        except odb.InstanceMissing as exc:
            return problem(404, "Not Found", str(exc))
        except odb.InstanceGone as exc:
            return problem(410, "Gone", str(exc))
        except odb.InstanceBusy as exc:
            return problem(409, "Conflict", str(exc))
        except ValueError as exc:
            return problem(400, "Bad Request", str(exc))
        return None

    async def _body(self, request: Request) -> str | None:
        body = await read_body(request, self._settings.max_body_bytes, self._settings.body_timeout)
        if not body.strip():
            return None
        try:
            value = strict_json.loads(body)
        except strict_json.JsonRejected as exc:
            raise ValueError(f"the body is not acceptable JSON: {exc}") from None
        # The Python client serializes the input itself and posts that text as a JSON string: the payload is
        # the text inside. Any other JSON body is the payload as it stands.
        if isinstance(value, str):
            try:
                strict_json.loads(value.encode())
                return value
            except strict_json.JsonRejected:
                pass
        return json.dumps(value)

    async def _start(self, request: Request, name: str, instance_id: str | None) -> Response:
        try:
            body = await self._body(request)
        except BodyRejected as exc:
            return exc.response()
        if instance_id is not None and (not instance_id or any(c in instance_id for c in "/\\#?") or
                                        len(instance_id) > 256):
            return problem(400, "Bad Request", "an instance id is 1 to 256 characters without / \\ # ?")
        try:
            instance_id = await self._host.start_new(name, instance_id, body)
        except LookupError as exc:  # the client reads ExceptionMessage from a 400
            return JSONResponse({"ExceptionMessage": str(exc), "title": "Bad Request", "status": 400,
                                 "detail": str(exc)}, status_code=400, media_type="application/problem+json")
        payload = self._management_urls(instance_id)
        return JSONResponse(payload, status_code=202, headers={"Location": payload["statusQueryGetUri"]})

    async def _status(self, request: Request, instance_id: str) -> Response:
        def read(c: Any) -> tuple[odb.Instance | None, list[dict[str, Any]]]:
            instance = odb.get_instance(c, instance_id)
            return instance, (odb.history(c, instance_id) if instance and _flag(request, "showHistory") else [])

        instance, events = await self._host.db.read(read)
        if instance is None:
            return problem(404, "Not Found", f"no orchestration instance {instance_id!r}")
        body = describe(instance, show_input=_flag(request, "showInput", True))
        if _flag(request, "showHistory"):
            with_output = _flag(request, "showHistoryOutput")
            body["historyEvents"] = [e if with_output else {k: v for k, v in e.items() if k not in ("Result", "Input")}
                                     for e in events]
        return JSONResponse(body, status_code=_STATUS_CODES.get(instance.status, 202))

    def _filters(self, request: Request) -> dict[str, Any]:
        statuses = [s for value in request.query_params.getlist("runtimeStatus") for s in value.split(",") if s]
        return {"statuses": statuses, "prefix": request.query_params.get("instanceIdPrefix"),
                "created_from": _time(request, "createdTimeFrom"), "created_to": _time(request, "createdTimeTo")}

    async def _list(self, request: Request) -> Response:
        filters = self._filters(request)
        instances = await self._host.db.read(lambda c: odb.list_instances(c, **filters))
        return JSONResponse([describe(i) for i in instances])

    async def _purge_by(self, request: Request) -> Response:
        filters = self._filters(request)
        if filters["created_from"] is None:
            return problem(400, "Bad Request", "purging by filter needs createdTimeFrom")
        statuses = [s for s in filters.pop("statuses") if s in odb.FINISHED] or list(odb.FINISHED)

        def purge(c: Any) -> int:
            return sum(odb.purge(c, i.instance_id) for i in odb.list_instances(c, statuses=statuses, **filters))

        deleted = await self._host.db.write(purge)
        if not deleted:
            return problem(404, "Not Found", "no finished instance matches")
        return JSONResponse({"instancesDeleted": deleted})

    async def _raise(self, request: Request, instance_id: str, name: str) -> Response:
        try:
            body = await self._body(request)
        except BodyRejected as exc:
            return exc.response()
        await self._host.raise_event(instance_id, name, body)
        return Response(status_code=202)
