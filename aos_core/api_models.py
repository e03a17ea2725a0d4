"""The HTTP API's bodies as pydantic models, and the OpenAPI 3.1 document generated from them.

Requests are validated with these models; responses are built from them, so every answer matches the
document that `GET /api/openapi.json` serves.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from aos_core.events import ID_PATTERN, Event

_AGENT_ID = ID_PATTERN
_EVENT_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- requests ------------------------------------------------------------------------------------------


class AgentCreate(_In):
    """Register an agent of a known type under a new id; perpetual agents are loaded on their first event."""

    type: str = Field(pattern=_AGENT_ID, description="a registered agent type, e.g. `tally`")
    id: str = Field(pattern=_AGENT_ID, description="the agent id, unique across all agents")
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, max_length=100)
    subscribe: list[str] = Field(default_factory=list, max_length=100,
                                 description="event type patterns (globs) this agent receives")


class MessageIn(_In):
    """A direct message to one agent. Resending the same `id` does not apply it twice."""

    id: str | None = Field(default=None, min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200, pattern=_EVENT_TYPE)
    data: Any = None
    correlationid: str | None = Field(default=None, max_length=200)


# --- responses -----------------------------------------------------------------------------------------


class Problem(_Out):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


class AgentResultOut(_Out):
    agent_id: str
    status: Literal["completed", "failed", "duplicate", "rejected", "accepted"]
    result: Any = None
    error: str | None = None


class EventAccepted(_Out):
    id: str
    status: Literal["pending", "completed", "failed", "rejected"]  # rejected: targets only refused it
    status_url: str


class EventStatus(EventAccepted):
    type: str
    kind: Literal["event", "message"]
    accepted_at: str
    targets: list[str]
    results: list[AgentResultOut]


class EventBatch(_Out):
    items: list[EventStatus | EventAccepted]  # full statuses when the wait saw every event done


class AgentInfo(_Out):
    id: str
    type: str
    state: str
    live: bool
    config: dict[str, Any]
    depends_on: list[str]
    capabilities: list[str]
    lifecycle: dict[str, Any]
    created_at: str


class AgentList(_Out):
    agents: list[AgentInfo]


class AgentContextOut(_Out):
    agent_id: str
    version: int
    state: dict[str, Any]


class AuditEntryOut(_Out):
    seq: int
    time: str
    actor: str
    action: str
    subject: str
    payload: Any = None
    payload_hash: str
    prev_hash: str
    hash: str


class AuditPage(_Out):
    entries: list[AuditEntryOut]
    next: str | None = Field(default=None, description="the URL of the next page, when this one is full")


class AuditVerificationOut(_Out):
    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str | None = None


class Health(_Out):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] = Field(default_factory=dict)


# --- the document --------------------------------------------------------------------------------------

_JSON = "application/json"
_PROBLEM = "application/problem+json"
_MODELS: list[type[BaseModel]] = [Event, AgentCreate, MessageIn, Problem, AgentResultOut, EventAccepted,
                                  EventStatus, EventBatch, AgentInfo, AgentList, AgentContextOut, Health,
                                  AuditEntryOut, AuditPage, AuditVerificationOut]
_REQUEST_MODELS: set[type[BaseModel]] = {Event, AgentCreate, MessageIn}
_EXTRA_PATHS: dict[str, Any] = {}


def register_paths(paths: dict[str, Any], models: list[type[BaseModel]], *, requests: tuple[type[BaseModel], ...] = ()
                   ) -> None:
    """Describe the routes a service area adds (see aos_core.api.register_operations) in the document."""
    _EXTRA_PATHS.update(paths)
    _MODELS.extend(m for m in models if m not in _MODELS)
    _REQUEST_MODELS.update(requests)


def _ref(model: type[BaseModel] | str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model if isinstance(model, str) else model.__name__}"}


def _content(schema: dict[str, Any], media: str = _JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def ref(model: type[BaseModel] | str) -> dict[str, str]:
    """A `$ref` to a component schema (for service areas describing their routes)."""
    return _ref(model)


def problems(*codes: int) -> dict[str, Any]:
    """Problem responses for the given status codes."""
    return _problems(*codes)


def ok(code: int, description: str, model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    """A JSON success response."""
    return _ok(code, description, model)


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """A required JSON request body of `model`."""
    return {"required": True, **_content(_ref(model))}


def links(response: dict[str, Any], code: int, **targets: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """`response` (from `ok`) with OpenAPI links: name=(operationId, {parameter: runtime expression})."""
    response[str(code)]["links"] = {name: {"operationId": op, "parameters": params}
                                    for name, (op, params) in targets.items()}
    return response


def _problems(*codes: int) -> dict[str, Any]:
    titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found", 409: "Conflict",
              413: "Body too large", 422: "Unprocessable", 503: "Unavailable"}
    return {str(code): {"description": titles[code], **_content(_ref(Problem), _PROBLEM)} for code in codes}


def _ok(code: int, description: str, model: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    schema = model if isinstance(model, dict) else _ref(model)
    return {str(code): {"description": description, **_content(schema)}}


AGENT_PARAM = {"name": "agent_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": _AGENT_ID}}
_WAIT_PARAM = {"name": "wait", "in": "query", "required": False,
               "description": "seconds (at most 30) to wait for the results before answering 202",
               "schema": {"type": "number", "minimum": 0, "maximum": 30}}
_KEYED = [{"functionKey": []}, {"functionKeyQuery": []}]
_BODY_ID = "$response.body#/id"
_AGENT_LINKS = {name: (op, {"agent_id": _BODY_ID}) for name, op in (
    ("GetAgent", "get_agent"), ("DeleteAgent", "delete_agent"), ("GetContext", "get_context"),
    ("PostMessage", "post_message"))}


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every route under `/api` (served at `GET /api/openapi.json`)."""
    _, defs = models_json_schema([(m, "validation" if m in _REQUEST_MODELS else "serialization")
                                  for m in _MODELS], ref_template="#/components/schemas/{model}")
    event_body = {"anyOf": [_ref(Event), {"type": "array", "items": _ref(Event), "minItems": 1, "maxItems": 100}]}
    accepted = {"anyOf": [_ref(EventAccepted), _ref(EventBatch)]}
    done = {"anyOf": [_ref(EventStatus), _ref(EventBatch)]}
    paths: dict[str, Any] = {
        "/api/health": {"get": {
            "operationId": "health", "summary": "Liveness; with ready=1 also checks storage", "security": [],
            "parameters": [{"name": "ready", "in": "query", "required": False,
                            "schema": {"type": "string", "enum": ["0", "1", "true", "false"]}}],
            "responses": {**_ok(200, "healthy", Health), "503": {"description": "not ready",
                                                                    **_content(_ref(Health))}}}},
        "/api/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document",
            "responses": _ok(200, "the OpenAPI document", {"type": "object"}) | _problems(401, 403)}},
        "/api/events": {"post": {
            "operationId": "post_events", "summary": "Accept a CloudEvents event (or a batch) and route it",
            "parameters": [_WAIT_PARAM],
            "requestBody": {"required": True, **_content(event_body)},
            "responses": {**_ok(200, "handled within the wait", done),
                          **links(_ok(202, "accepted", accepted), 202, GetEvent=("get_event", {"id": _BODY_ID})),
                          **_problems(400, 401, 403, 413, 503)}}},
        "/api/events/{id}": {"get": {
            "operationId": "get_event", "summary": "An accepted event's status and results",
            "parameters": [{"name": "id", "in": "path", "required": True,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "responses": {**_ok(200, "the event's status", EventStatus), **_problems(401, 403, 404)}}},
        "/api/agents": {
            "get": {"operationId": "list_agents", "summary": "Registered agents, filtered",
                    "parameters": [
                        {"name": "capability", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "type", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "state", "in": "query", "required": False, "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "required": False,
                         "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
                    "responses": {**_ok(200, "agents", AgentList), **_problems(400, 401, 403)}},
            "post": {"operationId": "create_agent", "summary": "Register an agent",
                     "requestBody": {"required": True, **_content(_ref(AgentCreate))},
                     "responses": {**links(_ok(201, "registered", AgentInfo), 201, **_AGENT_LINKS),
                                   **_ok(200, "already registered", AgentInfo),
                                   **_problems(400, 401, 403, 409, 413)}}},
        "/api/agents/{agent_id}": {
            "parameters": [AGENT_PARAM],
            "get": {"operationId": "get_agent", "summary": "One agent",
                    "responses": {**_ok(200, "the agent", AgentInfo), **_problems(400, 401, 403, 404)}},
            "delete": {"operationId": "delete_agent", "summary": "Terminate an agent for good",
                       "responses": {**_ok(200, "terminated", AgentInfo), **_problems(400, 401, 403, 404, 409)}}},
        "/api/agents/{agent_id}/messages": {"post": {
            "operationId": "post_message", "summary": "Send a direct message to one agent",
            "parameters": [AGENT_PARAM, _WAIT_PARAM],
            "requestBody": {"required": True, **_content(_ref(MessageIn))},
            "responses": {**_ok(200, "handled within the wait", EventStatus),
                          **links(_ok(202, "accepted", EventAccepted), 202, GetEvent=("get_event", {"id": _BODY_ID})),
                          **_problems(400, 401, 403, 404, 413, 503)}}},
        "/api/agents/{agent_id}/context": {"get": {
            "operationId": "get_context", "summary": "The agent's ContextMCPServer document",
            "parameters": [AGENT_PARAM],
            "responses": {**_ok(200, "the context", AgentContextOut), **_problems(400, 401, 403, 404)}}},
        "/api/audit": {"get": {
            "operationId": "list_audit", "summary": "Audit entries in sequence order, filtered and paged",
            "parameters": [
                {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                *({"name": n, "in": "query", "required": False, "schema": {"type": "string"}}
                  for n in ("actor", "action", "subject"))],
            "responses": {**_ok(200, "a page of entries", AuditPage), **_problems(400, 401, 403, 404)}}},
        "/api/audit/verify": {"get": {
            "operationId": "verify_audit", "summary": "Check the whole hash chain; names the first bad entry",
            "responses": {**_ok(200, "the verification", AuditVerificationOut), **_problems(401, 403, 404)}}},
        **_EXTRA_PATHS,
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "AOS - Agent Operating System", "version": "1.0.0",
                 "description": "Events, agents and their context over HTTP (Azure Functions)."},
        "paths": paths,
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
            },
        },
        "security": _KEYED,
    }
