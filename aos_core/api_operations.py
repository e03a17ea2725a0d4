"""The kernel's own HTTP operations: health, the document, events, agents, their context, the audit log.

Handlers live in `aos_core.api`, models in `aos_core.api_models`; see `aos_core.operations` for the form.
"""

from __future__ import annotations

from aos_core.ids import ID_PATTERN
from aos_core.operations import HttpOperation, Param, Reply, model

_API = "aos_core.api:"
_M = "aos_core.api_models:"
_BODY_ID = "$response.body#/id"

AGENT_ID = Param("agent_id", "path", {"type": "string", "pattern": ID_PATTERN})
LIMIT = Param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000})
WAIT = Param("wait", schema={"type": "number", "minimum": 0, "maximum": 30},
             description="seconds (at most 30) to wait for the results before answering 202")


def record_id(name: str) -> Param:
    """A path parameter naming a stored record (event, risk, decision): 1 to 200 characters."""
    return Param(name, "path", {"type": "string", "minLength": 1, "maxLength": 200})


_AGENT_LINKS = {name: (op, {"agent_id": _BODY_ID}) for name, op in (
    ("GetAgent", "get_agent"), ("DeleteAgent", "delete_agent"), ("GetContext", "get_context"),
    ("PostMessage", "post_message"))}
_GET_EVENT = {"GetEvent": ("get_event", {"id": _BODY_ID})}
_EVENT = model("aos_core.events:Event")

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "health", "health", ("GET",), None, _API + "health", "Liveness; with ready=1 also checks storage",
        in_memory=_API + "health_in_memory",
        params=(Param("ready", schema={"type": "string", "enum": ["0", "1", "true", "false"]}),),
        replies={200: Reply("healthy", _M + "Health"), 503: Reply("not ready", _M + "Health")}),
    HttpOperation(
        "openapi", "openapi.json", ("GET",), "reader", _API + "openapi", "This document",
        replies={200: Reply("the OpenAPI document", {"type": "object"})}, problems=(401, 403)),
    HttpOperation(
        "post_events", "events", ("POST",), "operator", _API + "post_events",
        "Accept a CloudEvents event (or a batch) and route it", params=(WAIT,),
        body={"anyOf": [_EVENT, {"type": "array", "items": _EVENT, "minItems": 1, "maxItems": 100}]},
        has_body=True, durable_client=True,
        replies={200: Reply("handled within the wait", {"anyOf": [model(_M + "EventStatus"),
                                                                  model(_M + "EventBatch")]}),
                 202: Reply("accepted", {"anyOf": [model(_M + "EventAccepted"), model(_M + "EventBatch")]},
                            links=_GET_EVENT)},
        problems=(400, 401, 403, 413, 503)),
    HttpOperation(
        "get_event", "events/{id}", ("GET",), "reader", _API + "get_event", "An accepted event's status and results",
        params=(record_id("id"),), replies={200: Reply("the event's status", _M + "EventStatus")},
        problems=(401, 403, 404)),
    HttpOperation(
        "list_agents", "agents", ("GET",), "reader", _API + "list_agents", "Registered agents, filtered",
        params=(Param("capability"), Param("type"), Param("state"), LIMIT),
        replies={200: Reply("agents", _M + "AgentList")}, problems=(400, 401, 403)),
    HttpOperation(
        "create_agent", "agents", ("POST",), "admin", _API + "create_agent", "Register an agent",
        body=_M + "AgentCreate", has_body=True,
        replies={201: Reply("registered", _M + "AgentInfo", links=_AGENT_LINKS),
                 200: Reply("already registered", _M + "AgentInfo")},
        problems=(400, 401, 403, 409, 413)),
    HttpOperation(
        "get_agent", "agents/{agent_id}", ("GET",), "reader", _API + "get_agent", "One agent", params=(AGENT_ID,),
        replies={200: Reply("the agent", _M + "AgentInfo")}, problems=(400, 401, 403, 404)),
    HttpOperation(
        "delete_agent", "agents/{agent_id}", ("DELETE",), "admin", _API + "delete_agent",
        "Terminate an agent for good", params=(AGENT_ID,), durable_client=True,
        replies={200: Reply("terminated", _M + "AgentInfo")}, problems=(400, 401, 403, 404, 409)),
    HttpOperation(
        "post_message", "agents/{agent_id}/messages", ("POST",), "operator", _API + "post_message",
        "Send a direct message to one agent", params=(AGENT_ID, WAIT), body=_M + "MessageIn", has_body=True,
        durable_client=True,
        replies={200: Reply("handled within the wait", _M + "EventStatus"),
                 202: Reply("accepted", _M + "EventAccepted", links=_GET_EVENT)},
        problems=(400, 401, 403, 404, 413, 503)),
    HttpOperation(
        "get_context", "agents/{agent_id}/context", ("GET",), "reader", _API + "get_context",
        "The agent's ContextMCPServer document", params=(AGENT_ID,),
        replies={200: Reply("the context", _M + "AgentContextOut")}, problems=(400, 401, 403, 404)),
    HttpOperation(
        "list_audit", "audit", ("GET",), "reader", _API + "list_audit",
        "Audit entries in sequence order, filtered and paged",
        params=(Param("after", schema={"type": "integer", "minimum": 0}), LIMIT, Param("actor"), Param("action"),
                Param("subject")),
        replies={200: Reply("a page of entries", _M + "AuditPage")}, problems=(400, 401, 403, 404)),
    HttpOperation(
        "verify_audit", "audit/verify", ("GET",), "reader", _API + "verify_audit",
        "Check the whole hash chain; names the first bad entry",
        replies={200: Reply("the verification", _M + "AuditVerificationOut")}, problems=(401, 403, 404)),
)
