"""A tiny real MCP server the client tests start as a subprocess over stdio (and mount over HTTP)."""

from __future__ import annotations

import os

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server: MCPServer = MCPServer("test-tools", log_level="WARNING")


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> dict[str, int]:
    return {"sum": a + b}


@server.tool(description="Say something back, with the environment variable GREETING in front.")
def greet(name: str) -> str:
    return f"{os.environ.get('GREETING', 'hello')} {name}"


@server.tool(description="Always fails, as a tool error.")
def refuse(reason: str) -> str:
    raise ToolError(f"refused: {reason}")


@server.tool(description="Never answers.")
async def hang() -> str:
    await anyio.sleep_forever()
    return "unreachable"


@server.tool(description="Kills the server process mid-call.")
def crash() -> str:
    os._exit(3)


if __name__ == "__main__":
    server.run("stdio")
