"""The handler of `/api/mcp` (declared in `services.mcp.operations`).

The `mcp` package is imported on the first MCP request, not when the app starts, so cold start stays cheap.
The host has checked the function key; the MCP server checks each tool against the caller's roles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aos_core import api

if TYPE_CHECKING:
    from aos_core.auth import Caller
    from aos_core.kernel import AgentOperatingSystem


async def mcp(aos: AgentOperatingSystem, request: api.ApiRequest, caller: Caller) -> api.ApiResponse:
    if request.method != "POST":  # stateless: no server-sent event stream to GET, no session to DELETE
        raise api.Problem(405, "Method not allowed", "this MCP endpoint is stateless: only POST is supported",
                          headers={"Allow": "POST"})
    from services.mcp.http import handle_mcp_http

    api.json_body(request)  # JSON the kernel cannot keep (NaN, too deep, not UTF-8) is a 400 naming why
    path = "/api/mcp" + (f"?{'&'.join(f'{k}={v}' for k, v in request.query.items())}" if request.query else "")
    status, headers, body = await handle_mcp_http(aos, request.method, path, dict(request.headers), request.body,
                                                  principal=caller)
    media = headers.pop("content-type", "")
    if status >= 400 and "json" not in media:  # the transport refused the request in plain text: say it as a problem
        detail = body.decode("utf-8", "replace").strip() or "the MCP endpoint refused the request"
        return api.Problem(status, "MCP request refused", detail).response()
    return api.ApiResponse(status, body, headers, media or "application/json")
