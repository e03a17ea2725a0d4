"""`/api/mcp` as an operation of the host-neutral API (`aos_core.api`), added on import.

The `mcp` package is imported on the first MCP request, not when the app starts, so cold start stays cheap.
The host has checked the function key; the MCP server checks each tool against the caller's roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aos_core import api
from aos_core import api_models as m

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem


async def mcp(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    from services.mcp.http import handle_mcp_http

    path = "/api/mcp" + (f"?{'&'.join(f'{k}={v}' for k, v in request.query.items())}" if request.query else "")
    status, headers, body = await handle_mcp_http(aos, request.method, path, dict(request.headers), request.body,
                                                  principal=caller)
    media = headers.pop("content-type", "application/json")
    return api.ApiResponse(status, body, headers, media)


api.register_operations({"mcp": api.Operation(mcp, "reader", has_body=True)})
m.register_paths({"/api/mcp": {"post": {
    "operationId": "mcp", "summary": "The OS as an MCP server (streamable HTTP, stateless, JSON responses)",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {"200": {"description": "a JSON-RPC response",
                          "content": {"application/json": {"schema": {"type": "object"}}}},
                  "202": {"description": "a notification was accepted"},
                  **m.problems(400, 401, 403, 413)}}}}, [])
