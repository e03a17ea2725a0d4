"""The host-neutral HTTP API: a plain request in, a plain response out. `function_app.py` maps its triggers here.

Every input is checked before anything changes. Bad input is a 4xx RFC 9457 problem (400 malformed or
invalid, 401/403 auth, 404 unknown, 409 conflict, 413 too large); only a broken dependency is a 503.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter, ValidationError

from aos_core import api_models as m
from aos_core import strict_json
from aos_core.ascii_numbers import decimal_number, whole_number
from aos_core.auth import AuthError, Caller, identify
from aos_core.errors import (
    AgentUnavailableError,
    ConfigError,
    ConflictError,
    IdempotencyInProgress,
    IdempotencyMismatch,
    NotFoundError,
    PolicyDenied,
    RegistrationError,
    StorageUnavailableError,
    problem_body,
)
from aos_core.event_records import EventRecord
from aos_core.events import Event, validate_id
from aos_core.lifecycle import AgentState
from aos_core.openapi import openapi_document
from aos_core.operations import HttpApi, HttpOperation, resolve
from aos_core.ports import PolicyRequest
from aos_core.telemetry import SPAN_HTTP, SPAN_TRIGGER

if TYPE_CHECKING:
    from aos_core.kernel import AgentOperatingSystem

log = logging.getLogger("aos.api")
_EVENTS = TypeAdapter(Event | list[Event])
_encode_json = strict_json.encoder()  # built once: json.dumps with options builds an encoder per call


@dataclass
class ApiRequest:
    method: str
    route_params: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    api: HttpApi | None = None  # the operations of the app it came in through (the document describes them)

    @classmethod
    def from_http(cls, request: Any, api: HttpApi | None = None) -> ApiRequest:
        """From anything shaped like `azure.functions.HttpRequest` (method, params, route_params, headers)."""
        return cls(method=request.method.upper(), route_params=dict(request.route_params or {}),
                   query=dict(request.params or {}), headers={k.lower(): v for k, v in request.headers.items()},
                   body=request.get_body() or b"", api=api)


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/json"

    @classmethod
    def problem_body(cls, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> ApiResponse:
        return cls(status, body, headers or {}, "application/problem+json")

    def body_bytes(self) -> bytes:
        if isinstance(self.body, bytes):  # already encoded (the MCP endpoint answers its own bytes)
            return self.body
        return b"" if self.body is None else _encode_json(self.body).encode()


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors
        self.headers = headers or {}

    def response(self) -> ApiResponse:
        body = problem_body(self.status, self.title, self.detail, errors=self.errors)
        return ApiResponse(self.status, body, dict(self.headers), "application/problem+json")


def invalid(exc: ValidationError, what: str) -> Problem:
    errors = [{"loc": ".".join(str(p) for p in e["loc"]) or what, "msg": e["msg"]} for e in exc.errors()]
    return Problem(400, "Invalid request", f"{what}: " + "; ".join(f"{e['loc']}: {e['msg']}" for e in errors),
                   errors=errors)


# --- running one operation -------------------------------------------------------------------------------

Handler = Callable[["AgentOperatingSystem", ApiRequest, Caller], Awaitable[ApiResponse]]


async def handle(aos: AgentOperatingSystem, op: HttpOperation, request: ApiRequest) -> ApiResponse:
    """Authorize and run one declared operation (aos_core.operations), turning every error into a problem."""
    with aos.telemetry.span(SPAN_HTTP, parent=request.headers.get("traceparent"), **{
            "http.request.method": request.method, "aos.operation": op.name}):
        return await _authorized(aos, op, request)


async def _authorized(aos: AgentOperatingSystem, op: HttpOperation, request: ApiRequest) -> ApiResponse:
    operation = op.name
    try:
        handler: Handler = resolve(op.handler)
        caller = identify(request.headers, aos.config.auth, anonymous=op.role is None)
        if op.role is not None and not caller.can(op.role):
            detail = (f"{operation} needs the {op.role!r} role; the caller has "
                      f"{', '.join(sorted(caller.roles)) or 'no roles'}")
            log.warning("denied %s to %s (%s): needs role %s", operation, caller.name, caller.via, op.role)
            if aos.audit is not None:
                await aos.audit.append(caller.name, "auth.denied", f"api/{operation}",
                                       {"via": caller.via, "roles": sorted(caller.roles), "needs": op.role})
            raise Problem(403, "Forbidden", detail)
        if op.has_body and len(request.body) > aos.config.api.max_body_bytes:
            raise Problem(413, "Body too large", f"the body is {len(request.body)} bytes; the limit is "
                          f"{aos.config.api.max_body_bytes}")
        key = request.headers.get("idempotency-key")
        if op.has_body and key is not None:
            return await _idempotent(aos, op, handler, request, caller, key)
        return await handler(aos, request, caller)
    except Problem as problem:
        return problem.response()
    except PolicyDenied as denied:
        return ApiResponse.problem_body(403, denied.problem())
    except IdempotencyMismatch as exc:
        return Problem(422, "Idempotency key reused", str(exc)).response()
    except IdempotencyInProgress as exc:
        return Problem(409, "Conflict", str(exc), headers={"Retry-After": f"{math.ceil(exc.retry_after)}"}).response()
    except AuthError as exc:
        return Problem(401, "Unauthorized", str(exc)).response()
    except NotFoundError as exc:
        return Problem(404, "Not found", str(exc)).response()
    except (ConflictError, RegistrationError) as exc:
        return Problem(409, "Conflict", str(exc)).response()
    except AgentUnavailableError as exc:
        return Problem(503, "Unavailable", str(exc), headers={"Retry-After": "1"}).response()
    except StorageUnavailableError as exc:
        log.error("API operation %s: %s", operation, exc)
        return Problem(503, "Storage unavailable", f"{exc}; nothing was changed, it is safe to retry",
                       headers={"Retry-After": "5"}).response()
    except Exception:
        log.exception("API operation %s failed", operation)
        return Problem(503, "Unavailable", "the operation failed on the server; it is safe to retry",
                       headers={"Retry-After": "1"}).response()


async def _idempotent(aos: AgentOperatingSystem, op: HttpOperation, handler: Handler, request: ApiRequest,
                      caller: Caller, key: str) -> ApiResponse:
    # The first request with a key runs; a replay with the same body gets its response back, another body a 422.
    if not 0 < len(key) <= 255:
        raise Problem(400, "Invalid request", "Idempotency-Key must be 1 to 255 characters")
    scope = f"{op.name}:{'/'.join(f'{k}={v}' for k, v in sorted(request.route_params.items()))}:{caller.name}"
    fingerprint = hashlib.sha256(request.body).hexdigest()
    stored = await aos.idempotency.begin(scope, key, fingerprint)
    if stored is not None:
        media = "application/problem+json" if stored.status >= 400 else "application/json"
        return ApiResponse(stored.status, stored.body, {**stored.headers, "Idempotent-Replayed": "true"}, media)
    try:
        response = await handler(aos, request, caller)
    except BaseException:
        await aos.idempotency.release(scope, key)
        raise
    if response.status >= 500:  # not an answer worth replaying: let the client retry for real
        await aos.idempotency.release(scope, key)
    else:
        await aos.idempotency.save(scope, key, fingerprint, response.status, response.body, response.headers)
    return response


async def enforce(aos: AgentOperatingSystem, caller: Caller, action: str, **fields: Any) -> None:
    """Check the policies for an action a caller asks for (PolicyDenied -> 403, audited by the engine)."""
    if aos.policy is not None:
        await aos.policy.enforce(PolicyRequest(action, caller=caller.name, roles=caller.roles, **fields))


def startup_failure(exc: BaseException) -> ApiResponse:
    """The answer while the kernel cannot start (a bad setting names itself here and in the log)."""
    detail = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__} while starting AOS"
    return Problem(503, "Unavailable", f"AOS is not running: {detail}", headers={"Retry-After": "5"}).response()


# --- helpers ---------------------------------------------------------------------------------------------


def json_body(request: ApiRequest) -> Any:
    if not request.body.strip():
        raise Problem(400, "Invalid request", "the request needs a JSON body")
    try:
        return strict_json.loads(request.body)
    except strict_json.JsonRejected as exc:
        raise Problem(400, "Invalid request", f"the body is not acceptable JSON: {exc}") from None


def parse(model: type[BaseModel], request: ApiRequest, what: str) -> Any:
    try:
        return model.model_validate(json_body(request))
    except ValidationError as exc:
        raise invalid(exc, what) from None


def agent_id_param(request: ApiRequest) -> str:
    """The `agent_id` route parameter, or a 400 naming what an agent id must look like."""
    value = request.route_params.get("agent_id", "")
    try:
        return validate_id(value, "agent id")
    except ValueError as exc:
        raise Problem(400, "Invalid request", str(exc)) from None


def _wait_seconds(aos: AgentOperatingSystem, request: ApiRequest) -> float | None:
    raw = request.query.get("wait")
    if raw is None or raw == "":
        return None
    try:
        seconds = decimal_number(raw)
    except ValueError:
        seconds = math.nan
    limit = aos.config.api.max_wait
    if not 0 <= seconds <= limit:  # NaN fails too
        raise Problem(400, "Invalid request", f"wait must be a number of seconds from 0 to {limit:g}, not {raw!r}")
    return seconds


def status_url(event_id: str) -> str:
    return f"/api/events/{quote(event_id, safe='')}"


def _status_body(record: EventRecord, *, full: bool) -> dict[str, Any]:
    body = {"id": record.id, "status": record.status, "status_url": status_url(record.id)}
    if full:
        body |= {"type": record.type, "kind": record.kind, "accepted_at": record.accepted_at,
                 "targets": record.targets, "results": record.results}
    return body


async def answer(aos: AgentOperatingSystem, records: list[EventRecord], wait: float | None, *, batch: bool
                 ) -> ApiResponse:
    """The answer to accepted events: `200` with the results once done within `wait` seconds, else `202` with
    each event's status URL. Also what the MCP send tools return, so both ways in wait and answer alike."""
    if wait:
        records = [await aos.records.wait(r.id, wait) or r if r.status == "pending" else r for r in records]
    done = wait is not None and all(r.status != "pending" for r in records)
    items = [_status_body(r, full=done) for r in records]
    body = {"items": items} if batch else items[0]
    headers = {} if done or batch else {"Location": items[0]["status_url"]}
    return ApiResponse(200 if done else 202, body, headers)


def _agent_info(info: dict[str, Any]) -> dict[str, Any]:
    return m.AgentInfo.model_validate(info).model_dump(mode="json")


# --- operations ------------------------------------------------------------------------------------------


def _ready_probe(request: ApiRequest) -> bool:
    return request.query.get("ready", "").lower() in ("1", "true")


def health_in_memory(request: ApiRequest) -> bool:
    """Liveness reads only counts the kernel keeps in memory; readiness (`ready=1`) writes to storage."""
    return not _ready_probe(request)


async def health(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    checks: dict[str, Any] = {"kernel": "ok", "live_agents": aos.dispatcher.live_count,
                              "breakers": aos.breakers.states()}
    if _ready_probe(request):
        try:  # a write, since a full disk still serves reads; and what the store knows of its own faults
            await aos.store.put("health/ready-probe", {"at": aos.clock.now().isoformat()})
            fault = getattr(aos.store, "readiness", lambda: None)()
            if fault is not None:
                raise StorageUnavailableError(f"storage unavailable: {fault}")
            checks["storage"] = "ok"
        except Exception as exc:
            checks["storage"] = f"unavailable: {exc}" if isinstance(exc, StorageUnavailableError) else (
                f"unavailable: {type(exc).__name__}")
            return ApiResponse(503, {"status": "unavailable", "checks": checks}, {"Retry-After": "5"})
    return ApiResponse(200, {"status": "ok", "checks": checks})


async def openapi(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    if request.api is None:
        raise Problem(404, "Not found", "this request came in through no declared API")
    return ApiResponse(200, openapi_document(request.api))


async def post_events(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    wait = _wait_seconds(aos, request)
    try:
        parsed = _EVENTS.validate_python(json_body(request))
    except ValidationError as exc:
        raise invalid(exc, "event") from None
    events = parsed if isinstance(parsed, list) else [parsed]
    if not events or len(events) > aos.config.api.max_batch:
        raise Problem(400, "Invalid request", f"a batch holds 1 to {aos.config.api.max_batch} events")
    for event in events:
        await enforce(aos, caller, "event.submit", event_type=event.type, subject=f"event/{event.id}")
    records = await aos.submit_many([aos.telemetry.inject(event) for event in events], actor=caller.name)
    return await answer(aos, records, wait, batch=isinstance(parsed, list))


async def get_event(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    event_id = request.route_params.get("id", "")
    record = await aos.records.get(event_id) if 0 < len(event_id) <= 200 else None
    if record is None:
        raise Problem(404, "Not found", f"no event {event_id!r} was accepted")
    return ApiResponse(200, _status_body(record, full=True))


async def list_agents(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    limit = int_param(request, "limit", 1000, 1, 1000)
    agents = await aos.list_agents(capability=request.query.get("capability") or None,
                                   agent_type=request.query.get("type") or None,
                                   state=request.query.get("state") or None, limit=limit)
    return ApiResponse(200, {"agents": [_agent_info(a) for a in agents]})


async def create_agent(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    spec: m.AgentCreate = parse(m.AgentCreate, request, "agent")
    if not aos.registry.has_type(spec.type):
        known = ", ".join(sorted(aos.registry.types)) or "none"
        raise Problem(400, "Invalid request", f"unknown agent type {spec.type!r} (registered types: {known})")
    for dep in spec.depends_on:
        validate_dep(dep)
    existing = await aos.registry.get(spec.id)
    config = dict(spec.config)
    if spec.subscribe:
        config["subscribe"] = list(spec.subscribe)
    if existing is not None:
        same = (existing.type == spec.type and existing.config == config and existing.depends_on == spec.depends_on
                and existing.state != AgentState.TERMINATED)
        if not same:
            raise Problem(409, "Conflict", f"agent {spec.id!r} already exists as a {existing.type!r} agent"
                          f"{' (terminated)' if existing.state == AgentState.TERMINATED else ''} with another "
                          "definition; choose another id")
        return ApiResponse(200, _agent_info(await aos.get_agent(spec.id)), {"Location": f"/api/agents/{spec.id}"})
    await enforce(aos, caller, "agent.register", agent_id=spec.id, agent_type=spec.type)
    await aos.register_agent(spec.type, agent_id=spec.id, config=config, depends_on=spec.depends_on,
                             actor=caller.name)
    log.info("agent %s (%s) registered by %s", spec.id, spec.type, caller.name)
    return ApiResponse(201, _agent_info(await aos.get_agent(spec.id)), {"Location": f"/api/agents/{spec.id}"})


def validate_dep(dep: str) -> None:
    try:
        validate_id(dep, "dependency")
    except ValueError as exc:
        raise Problem(400, "Invalid request", str(exc)) from None


async def get_agent(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    return ApiResponse(200, _agent_info(await aos.get_agent(agent_id_param(request))))


async def delete_agent(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    agent_id = agent_id_param(request)
    info = await aos.get_agent(agent_id)  # 404 before anything changes
    if info["state"] != AgentState.TERMINATED:
        await enforce(aos, caller, "agent.terminate", agent_id=agent_id, agent_type=info["type"])
        await aos.terminate_agent(agent_id, reason=f"terminated over HTTP by {caller.name}", actor=caller.name)
        log.info("agent %s terminated by %s", agent_id, caller.name)
    return ApiResponse(200, _agent_info(await aos.get_agent(agent_id)))


async def post_message(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    agent_id = agent_id_param(request)
    wait = _wait_seconds(aos, request)
    message: m.MessageIn = parse(m.MessageIn, request, "message")
    fields = message.model_dump(exclude_none=True)
    try:
        event = Event(source=f"/api/agents/{agent_id}/messages", subject=agent_id, **fields)
    except ValidationError as exc:
        raise invalid(exc, "message") from None
    agent_type = await aos.agent_type(agent_id)  # 404 for an unknown agent, before anything is recorded
    await enforce(aos, caller, "message.send", agent_id=agent_id, agent_type=agent_type, event_type=event.type)
    record = await aos.submit(aos.telemetry.inject(event), to_agent=agent_id, actor=caller.name)
    return await answer(aos, [record], wait, batch=False)


async def get_context(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    agent_id = agent_id_param(request)
    context = await aos.read_context(agent_id)
    if context is None:
        raise Problem(404, "Not found", f"agent {agent_id!r} keeps no context (it is not a perpetual agent)")
    return ApiResponse(200, context)


def _audit_log(aos: AgentOperatingSystem) -> Any:
    if aos.audit is None:
        raise Problem(404, "Not found", "this host keeps no audit log (governance.audit_backend is none)")
    return aos.audit


def path_id(request: ApiRequest, name: str) -> str:
    """A route parameter naming a stored record (risk, decision, ...): 1 to 200 characters, else a 400."""
    value = request.route_params.get(name, "")
    if not 0 < len(value) <= 200:
        raise Problem(400, "Invalid request", f"{name} must be 1 to 200 characters")
    return value


def int_param(request: ApiRequest, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, str(default))
    try:
        value: int | None = whole_number(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise Problem(400, "Invalid request", f"{name} must be an integer from {low} to {high}, not {raw!r}")
    return value


async def list_audit(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    audit = _audit_log(aos)
    after = int_param(request, "after", 0, 0, 2**62)
    limit = int_param(request, "limit", 100, 1, 1000)
    entries = await audit.entries(after=after, limit=limit, actor=request.query.get("actor") or None,
                                  action=request.query.get("action") or None,
                                  subject=request.query.get("subject") or None)
    items = [entry.to_dict() for entry in entries]
    body: dict[str, Any] = {"entries": items}
    if len(items) == limit:
        body["next"] = f"/api/audit?after={items[-1]['seq']}&limit={limit}"
    return ApiResponse(200, body)


async def verify_audit(aos: AgentOperatingSystem, request: ApiRequest, caller: Caller) -> ApiResponse:
    return ApiResponse(200, (await _audit_log(aos).verify()).to_dict())


async def tick(aos: AgentOperatingSystem) -> list[str]:
    """The timer trigger: fire what is due now; returns the ids of the events it emitted."""
    with aos.telemetry.span(SPAN_TRIGGER, trigger="timer"):
        return [event.id for event in await aos.tick()]
