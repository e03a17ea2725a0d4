"""A kernel with agents, its MCP server, and MCP client sessions to it: in-memory, or streamable HTTP over a real
uvicorn server on a free local port, as a given principal."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from agents import BaseAgent
from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.mcp.http import McpHttpApp
from services.mcp.principal import McpPrincipal, acting_as
from services.storage import InMemoryStateStore

Session = Callable[[McpPrincipal], AbstractAsyncContextManager[Client]]


class Echo(BaseAgent):
    """Replies with what it was sent: the reply a waiting sender gets back."""

    agent_type = "echo"
    capabilities = ("echo", "reply")

    async def handle_event(self, event: Event) -> Any:
        return {"echo": event.data, "type": event.type, "from": event.source}


def principal_header(name: str, *roles: str, agent: str | None = None) -> str:
    claims = [{"typ": "roles", "val": r} for r in roles] + [{"typ": "name", "val": name}]
    if agent:
        claims.append({"typ": "aos_agent", "val": agent})
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()


def headers_for(who: McpPrincipal) -> dict[str, str]:
    """How a caller shows up over HTTP: an agent with the function key narrowed by X-AOS-Agent; a person by the
    App Service principal header with app roles."""
    if who.agent_id is not None:
        return {"x-aos-agent": who.agent_id}
    return {"x-ms-client-principal": principal_header(who.name, *who.roles)}


@pytest.fixture
async def aos(tmp_path: Path) -> AsyncIterator[AgentOperatingSystem]:
    store = InMemoryStateStore()
    kernel = AgentOperatingSystem(AOSConfig(data_dir=tmp_path / "data", auth={"trust_principal_header": True}),
                                  store=store, clock=ManualClock())
    await kernel.initialize()
    await kernel.register_agent(TallyAgent("orders"), subscribe=["order.*"])
    await kernel.register_agent(Echo("echo"))
    yield kernel
    await kernel.run_until_idle()
    await kernel.shutdown()
    await store.close()


def free_socket() -> socket.socket:
    # IPPROTO_TCP spelled out, so asyncio sets TCP_NODELAY on accepted connections (no delayed-ACK stalls).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue here until uvicorn has run its lifespan and accepts them
    return sock


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve `app` on uvicorn on a free port; yields the base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def http_session(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    """The mcp package's streamable HTTP client; the httpx client we pass in is ours to close."""
    async with create_mcp_http_client(headers=headers) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        yield client


@pytest.fixture(params=["memory", "http"])
async def session(request: pytest.FixtureRequest, aos: AgentOperatingSystem) -> AsyncIterator[Session]:
    """`async with session(principal) as client:` one MCP client session to the OS server, as that caller."""
    app = McpHttpApp(aos)
    if request.param == "memory":

        @asynccontextmanager
        async def in_memory(who: McpPrincipal) -> AsyncIterator[Client]:
            with acting_as(who):
                async with Client(app.server) as client:
                    yield client

        yield in_memory
        return
    async with serve(app) as base:

        @asynccontextmanager
        async def over_http(who: McpPrincipal) -> AsyncIterator[Client]:
            async with http_session(f"{base}/api/mcp", headers_for(who)) as client:
                yield client

        yield over_http
