"""MCP for AOS: the OS as an MCP server (`/api/mcp`), and agents as MCP clients.

Everything is imported lazily, so `import services.mcp` loads neither `mcp` nor an HTTP client:

- `services.mcp.os_server.create_os_mcp_server(aos)`: the OS tools plus the agent context resources
- `services.mcp.http.handle_mcp_http(...)`: one plain HTTP request through the streamable-HTTP app
- `services.mcp.client.McpClients`: the MCP servers an agent's config names, behind one `call_tool`
- `services.mcp.principal`: who is calling and what they may do
"""

from __future__ import annotations

from aos_core.lazy import lazy_exports

_EXPORTS = {
    "AccessDeniedError": "services.mcp.principal",
    "McpPrincipal": "services.mcp.principal",
    "acting_as": "services.mcp.principal",
    "create_os_mcp_server": "services.mcp.os_server",
    "McpHttpApp": "services.mcp.http",
    "handle_mcp_http": "services.mcp.http",
    "McpClients": "services.mcp.client",
    "McpServerSpec": "services.mcp.client",
    "McpToolError": "services.mcp.client",
    "McpConnectionError": "services.mcp.client",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
