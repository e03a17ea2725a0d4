"""Agents as MCP clients: real MCP servers over stdio (a subprocess) and streamable HTTP (uvicorn), one call_tool."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import Receive, Scope, Send

from aos_core import AOSConfig
from aos_core.errors import ConfigError, NotFoundError
from aos_core.testing import ManualClock
from services.mcp.client import McpClients, McpConnectionError, McpServerSpec, McpToolError
from services.reliability import CircuitOpenError, OperationTimeoutError
from services.secrets import EnvironmentSecretStore
from tests.services.mcp.conftest import serve

TOOL_SERVER = str(Path(__file__).with_name("tool_server.py"))


def stdio(name: str = "tools", *extra: str, **settings: Any) -> McpServerSpec:
    return McpServerSpec(name=name, command=sys.executable, args=[TOOL_SERVER, *extra], **settings)



@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()


async def test_an_agent_calls_a_tool_of_a_stdio_server(clock: ManualClock) -> None:
    config = AOSConfig(mcp={"servers": {"tools": {"command": sys.executable, "args": [TOOL_SERVER],
                                                  "env": {"GREETING": "hi"}}}})
    async with McpClients.for_agent({"mcp_servers": ["tools"]}, config, clock=clock) as clients:
        tools = await clients.list_tools()
        assert {"add", "greet", "refuse"} <= {t.name for t in tools["tools"]}
        result = await clients.call_tool("tools/add", {"a": 2, "b": 40})
        assert result.data == {"sum": 42} and (result.server, result.tool) == ("tools", "add")
        assert (await clients.call_tool("greet", {"name": "ceo"})).data == {"result": "hi ceo"}  # unique name
        with pytest.raises(McpToolError, match="refused: no budget") as refused:
            await clients.call_tool("tools/refuse", {"reason": "no budget"})
        assert refused.value.tool == "refuse"
        with pytest.raises(McpToolError, match="b"):
            await clients.call_tool("tools/add", {"a": 1})  # invalid arguments: the server says which
        with pytest.raises(NotFoundError):
            await clients.call_tool("nowhere/add", {})
        assert clients.breaker("tools").state == "closed"  # tool errors are answers, not outages


async def test_a_hanging_tool_times_out_and_the_next_call_reconnects(clock: ManualClock) -> None:
    async with McpClients([stdio(timeout=5, attempts=1)], clock=clock) as clients:
        await clients.call_tool("tools/add", {"a": 1, "b": 1})  # connected
        call = asyncio.ensure_future(clients.call_tool("tools/hang"))
        await clock.advance(5)
        with pytest.raises(OperationTimeoutError, match="MCP tools/hang timed out after 5 s"):
            await call
        assert (await clients.call_tool("tools/add", {"a": 2, "b": 2})).data == {"sum": 4}


async def test_a_dying_server_is_a_connection_error_then_the_breaker_opens(clock: ManualClock) -> None:
    spec = stdio(attempts=1, failure_threshold=2, reset_timeout=30)
    async with McpClients([spec], clock=clock) as clients:
        for _ in range(2):
            with pytest.raises(McpConnectionError):
                await clients.call_tool("tools/crash")
        with pytest.raises(CircuitOpenError):  # fails fast: nothing is started
            await clients.call_tool("tools/add", {"a": 1, "b": 2})
        await clock.advance(30)
        assert (await clients.call_tool("tools/add", {"a": 1, "b": 2})).data == {"sum": 3}
        assert clients.breaker("tools").state == "closed"


async def test_connection_failures_are_retried_then_typed(clock: ManualClock) -> None:
    broken = McpServerSpec(name="broken", command=sys.executable, args=["-c", "raise SystemExit(2)"], attempts=3,
                           backoff_initial=0, backoff_max=0)  # exits before the handshake
    async with McpClients([broken], clock=clock) as clients:
        with pytest.raises(McpConnectionError, match="cannot connect to MCP server broken"):
            await clients.call_tool("broken/add", {"a": 1, "b": 2})
        assert clients.breaker("broken").snapshot()["failures"] == 3


def test_bad_specs_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"mcp_servers: .*exactly one of 'command'"):
        McpClients.for_agent({"mcp_servers": [{"name": "x"}]}, AOSConfig())
    with pytest.raises(ConfigError, match=r"'github' is not in mcp\.servers"):
        McpClients.for_agent({"mcp_servers": ["github"]}, AOSConfig())
    with pytest.raises(ConfigError, match=r"mcp\.servers\.h: url"):
        McpClients.for_agent({"mcp_servers": ["h"]}, AOSConfig(mcp={"servers": {"h": {"url": "ftp://x"}}}))


class RequireToken:
    """The tool server over streamable HTTP, refusing requests without the bearer token."""

    def __init__(self, token: str) -> None:
        from tests.services.mcp.tool_server import server

        self.app = server.streamable_http_app(stateless_http=True, json_response=True)
        self.token = token
        self.seen: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization")
            self.seen.append(auth.decode() if auth else None)
            if auth != f"Bearer {self.token}".encode():
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


@pytest.fixture
async def token_server() -> AsyncIterator[tuple[str, RequireToken]]:
    app = RequireToken("s3cret")
    async with serve(app) as base:
        yield f"{base}/mcp", app


async def test_http_server_with_a_header_from_the_secret_store(token_server: tuple[str, RequireToken],
                                                              clock: ManualClock) -> None:
    url, app = token_server
    secrets = EnvironmentSecretStore({"TOOLS_TOKEN": "Bearer s3cret"})
    spec = McpServerSpec(name="remote", url=url, secret_headers={"Authorization": "tools-token"})
    async with McpClients([spec], secrets=secrets, clock=clock) as clients:
        assert (await clients.call_tool("remote/add", {"a": 20, "b": 22})).data == {"sum": 42}
    assert set(app.seen) == {"Bearer s3cret"}

    no_secret = McpServerSpec(name="remote2", url=url, secret_headers={"Authorization": "missing-token"})
    async with McpClients([no_secret], secrets=secrets, clock=clock) as clients:
        with pytest.raises(ConfigError, match="needs secret 'missing-token'"):
            await clients.call_tool("remote2/add", {"a": 1, "b": 1})

    wrong = McpServerSpec(name="remote3", url=url, headers={"Authorization": "Bearer nope"}, attempts=1)
    async with McpClients([wrong], clock=clock) as clients:
        with pytest.raises(McpConnectionError):
            await clients.call_tool("remote3/add", {"a": 1, "b": 1})
