"""The MCP area's HTTP operation: `/api/mcp`, the OS as an MCP server (handler in `services.mcp.route`).

The `mcp` package is imported on the first MCP request, not when the app starts, so cold start stays cheap.
"""

from __future__ import annotations

from aos_core.operations import HttpOperation, Reply, model

_OBJECT = {"type": "object"}
# The MCP server answers bad JSON-RPC with a JSON-RPC error; the API layer with a problem.
_JSON_OR_PROBLEM = {"content": {"application/json": {"schema": _OBJECT},
                                "application/problem+json": {"schema": model("aos_core.api_models:Problem")}}}

OPERATIONS: tuple[HttpOperation, ...] = (
    HttpOperation(
        "mcp", "mcp", ("GET", "POST", "DELETE"), "reader", "services.mcp.route:mcp",
        "The OS as an MCP server (streamable HTTP, stateless, JSON responses)", body=_OBJECT, has_body=True,
        durable_client=True, include_in_schema=("POST",),  # stateless: GET and DELETE answer 405
        replies={200: Reply("a JSON-RPC response", _OBJECT), 202: Reply("a notification was accepted")},
        extra_responses={str(code): {"description": title, **_JSON_OR_PROBLEM} for code, title in (
            (400, "Bad request"), (401, "Unauthorized"), (403, "Forbidden"), (406, "Not acceptable"),
            (413, "Body too large"))}),
)
