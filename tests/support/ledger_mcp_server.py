"""A real MCP server over stdio whose tools write every call that reaches them to a ledger file (`LEDGER`),
one JSON line with the arguments and the caller's idempotency key, so a test can count how often a tool ran."""

from __future__ import annotations

import json
import os
from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from services.mcp.client import IDEMPOTENCY_META_KEY

server: MCPServer = MCPServer("ledger-tools", log_level="WARNING")


def _record(tool: str, arguments: dict[str, Any], ctx: Context) -> None:
    meta = ctx.request_context.meta or {}
    line = json.dumps({"tool": tool, "arguments": arguments, "key": meta.get(IDEMPOTENCY_META_KEY)})
    with open(os.environ["LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(line + "\n")


@server.tool(description="Look up what the company knows about a topic.")
def lookup(topic: str, ctx: Context) -> dict[str, Any]:
    _record("lookup", {"topic": topic}, ctx)
    return {"topic": topic, "facts": [f"{topic} was delivered twice before", f"{topic} needs two engineers"]}


@server.tool(description="Delete the production database (policy forbids it).")
def drop_database(name: str, ctx: Context) -> str:
    _record("drop_database", {"name": name}, ctx)
    return f"dropped {name}"


if __name__ == "__main__":
    server.run("stdio")
