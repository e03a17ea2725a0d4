"""`/api/mcp` at the protocol level, over streamable HTTP on uvicorn: what real MCP clients run into.

Error codes per spec, the Origin allow-list, capabilities across protocol versions, resources/list paging, and
requests that end when the client leaves or the configured maximum passes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from agents import BaseAgent, PurposeDrivenAgent
from agents.purpose_driven import Goal
from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem
from aos_core.events import Event
from services.mcp import protocol
from services.mcp.http import REQUEST_TIMEOUT, McpHttpApp, close_mcp_http, handle_mcp_http
from services.mcp.os_server import app_version
from services.mcp.principal import McpPrincipal
from tests.services.mcp.conftest import headers_for, http_session, serve

OPERATOR = McpPrincipal.with_roles("ops", "operator")
LEGACY = ("2025-06-18", "2025-11-25")
MODERN = "2026-07-28"


class Gate(BaseAgent):
    """Answers only once the test opens its gate: a handler that outlasts the client."""

    agent_type = "gate"
    opened = asyncio.Event()

    async def handle_event(self, event: Event) -> Any:
        await type(self).opened.wait()
        return "through"


class Planner(PurposeDrivenAgent):
    """A purpose-driven agent that takes a decision per event, as the business agents do."""

    agent_type = "planner"
    default_purpose = "Plan the launches"
    default_goals = (Goal(id="plans", metric="plans_made", target=4),)

    async def handle_event(self, event: Event) -> Any:
        self.increment_metric("plans_made")
        self.state.setdefault("decisions", []).append({"id": f"d-{event.id}", "title": f"plan {event.data}",
                                                       "chosen": "go", "at": "2026-01-01T00:00:00+00:00"})
        return None


class Server:
    """McpHttpApp on uvicorn, with the time each HTTP request ended on the server."""

    def __init__(self, aos: AgentOperatingSystem) -> None:
        self.app = McpHttpApp(aos)
        self.ended: list[float] = []
        self.url = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.ended.append(time.monotonic())


@pytest.fixture
async def server(aos: AgentOperatingSystem) -> AsyncIterator[Server]:
    aos.config.mcp.allowed_origins = ["https://portal.example.com", "http://tools.example.com:*"]
    aos.config.mcp.max_request_seconds = 3.0
    await aos.register_agent(Gate("gate"))
    Gate.opened = asyncio.Event()
    served = Server(aos)
    async with serve(served) as base:
        served.url = f"{base}/api/mcp"
        yield served
    Gate.opened.set()


def rpc(method: str, params: dict[str, Any] | None = None, *, version: str = "2025-11-25", id: Any = 1
        ) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body of one request at `version` (2026-07-28 carries its envelope in `_meta`)."""
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": version,
               **headers_for(OPERATOR)}
    params = dict(params or {})
    if version == MODERN:
        headers["mcp-method"] = method
        if "name" in params:
            headers["mcp-name"] = params["name"]
        params["_meta"] = {"io.modelcontextprotocol/protocolVersion": MODERN,
                           "io.modelcontextprotocol/clientCapabilities": {}}
    return headers, {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


async def post(url: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, content=json.dumps(body), headers={"content-type": "application/json",
                                                                        **headers})


# --- error codes ---------------------------------------------------------------------------------------


async def test_unknown_tools_and_prompts_are_invalid_params_for_the_mcp_client(server: Server) -> None:
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        with pytest.raises(MCPError) as tool:
            await client.call_tool("no_such_tool", {})
        with pytest.raises(MCPError) as prompt:
            await client.get_prompt("no_such_prompt")
        with pytest.raises(MCPError) as argument:
            await client.get_prompt("agent_briefing", {})  # its agent_id is required
    assert tool.value.error.code == -32602 and "Unknown tool: no_such_tool" in tool.value.error.message
    assert prompt.value.error.code == -32602 and "Unknown prompt: no_such_prompt" in prompt.value.error.message
    assert argument.value.error.code == -32602


@pytest.mark.parametrize("version", [*LEGACY, MODERN])
async def test_error_codes_follow_the_negotiated_version(server: Server, version: str) -> None:
    headers, body = rpc("tools/call", {"name": "no_such_tool", "arguments": {}}, version=version)
    answer = (await post(server.url, body, headers)).json()
    assert answer["id"] == 1 and answer["error"]["code"] == -32602
    headers, body = rpc("prompts/get", {"name": "no_such_prompt"}, version=version)
    assert (await post(server.url, body, headers)).json()["error"]["code"] == -32602

    headers, body = rpc("tools/list", version=version)  # ping is gone at 2026-07-28
    for bad in ([body], {**body, "id": None}, {**body, "jsonrpc": "1.0"}, {"jsonrpc": "2.0", "id": 3},
                {**body, "params": [1]}):
        response = await post(server.url, bad, headers)
        assert response.status_code == 400, bad
        error = response.json()
        assert error["error"]["code"] == -32600 and "\n" not in error["error"]["message"], bad
    response = await post(server.url, {**body, "id": 7}, headers)
    assert response.status_code == 200 and response.json()["id"] == 7  # and the endpoint keeps serving


async def test_capabilities_agree_across_versions_and_listen_is_refused_at_once(server: Server) -> None:
    headers, body = rpc("server/discover", version=MODERN)
    discovered = (await post(server.url, body, headers)).json()["result"]
    assert discovered["capabilities"] == {
        "prompts": {"listChanged": False}, "resources": {"listChanged": False, "subscribe": False},
        "tools": {"listChanged": False}}
    for version in LEGACY:
        headers, body = rpc("initialize", {"protocolVersion": version, "capabilities": {},
                                           "clientInfo": {"name": "t", "version": "1"}}, version=version)
        initialized = (await post(server.url, body, headers)).json()["result"]
        assert initialized["protocolVersion"] == version
        assert initialized["capabilities"] == discovered["capabilities"]
        assert initialized["serverInfo"]["version"] == app_version() != ""
    assert discovered["_meta"]["io.modelcontextprotocol/serverInfo"]["version"] == app_version()

    headers, body = rpc("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, version=MODERN)
    started = time.monotonic()
    response = await post(server.url, body, {**headers, "accept": "application/json, text/event-stream"})
    assert time.monotonic() - started < 5
    assert response.json()["error"]["code"] == -32601


# --- Origin --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin, allowed", [
    (None, True), ("http://localhost:6274", True), ("http://127.0.0.1", True), ("http://[::1]:8080", True),
    ("https://portal.example.com", True), ("http://tools.example.com:9000", True),
    ("https://evil.example.com", False), ("http://localhost.evil.example.com", False), ("null", False),
    ("https://portal.example.com:8443", False), ("http://tools.example.com.evil.io:9000", False),
])
async def test_an_origin_outside_the_allow_list_is_forbidden_and_changes_nothing(
        server: Server, aos: AgentOperatingSystem, origin: str | None, allowed: bool) -> None:
    headers, body = rpc("tools/call", {"name": "send_event", "arguments": {"type": "order.created"}})
    if origin is not None:
        headers["origin"] = origin
    response = await post(server.url, body, headers)
    if allowed:
        assert response.status_code == 200 and not response.json()["result"]["isError"]
        return
    assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
    assert origin in response.json()["detail"]
    assert (await aos.read_context("orders") or {})["state"]["total"] == 0  # no event was sent


async def test_the_mcp_client_from_a_foreign_origin_cannot_connect(server: Server) -> None:
    served = len(server.ended)
    with pytest.raises(Exception):  # noqa: B017 - the client reports the 403 as a generic error group
        async with http_session(server.url, {**headers_for(OPERATOR), "origin": "https://evil.example.com"}):
            pass
    assert len(server.ended) > served  # it reached the server, which refused it
    async with http_session(server.url, {**headers_for(OPERATOR), "origin": "http://localhost:6274"}) as client:
        assert (await client.list_tools()).tools  # the Inspector's own origin on loopback is fine


# --- resources/list ------------------------------------------------------------------------------------


async def test_resources_list_pages_through_the_contexts_the_caller_may_read(
        server: Server, aos: AgentOperatingSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "PAGE_SIZE", 2)
    for n in range(3):
        await aos.register_agent(TallyAgent(f"shop-{n}"))
    seen: list[str] = []
    cursors = 0
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        cursor = None
        while True:
            page = await client.list_resources(cursor=cursor)
            assert len(page.resources) <= 2
            seen += [str(r.uri) for r in page.resources]
            cursor = page.next_cursor
            if cursor is None:
                break
            cursors += 1
        first = (await client.list_resources()).resources[0]
        read = await client.read_resource(first.uri)
    # Perpetual agents only (echo and gate keep no context), in id order, each once.
    assert seen == [f"context://agents/{a}" for a in ("orders", "shop-0", "shop-1", "shop-2")]
    assert cursors == 1 and first.mime_type == "application/json"
    assert json.loads(read.contents[0].text)["agent_id"] == "orders"  # type: ignore[union-attr]

    async with http_session(server.url, headers_for(McpPrincipal.agent("shop-1"))) as client:
        own = await client.list_resources()
    assert [str(r.uri) for r in own.resources] == ["context://agents/shop-1"]
    async with http_session(server.url, headers_for(McpPrincipal.with_roles("viewer", "reader"))) as client:
        assert (await client.list_resources()).resources == []  # readers do not read contexts

    headers, body = rpc("resources/list", {"cursor": 5})
    assert (await post(server.url, body, headers)).json()["error"]["code"] == -32602


# --- requests end ----------------------------------------------------------------------------------------


async def test_a_client_that_disconnects_mid_request_ends_the_request(server: Server) -> None:
    server.app.max_seconds = 30  # far off: only the disconnect can end the request in time
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        await client.list_tools()
        served = len(server.ended)
        with anyio.move_on_after(0.5) as gave_up:
            await client.call_tool("send_message", {"to_agent": "gate", "type": "knock", "wait": True,
                                                    "wait_seconds": 25})
    left = time.monotonic()
    assert gave_up.cancelled_caught
    for _ in range(100):  # the server notices the closed connection: bounded polling of real I/O
        if len(server.ended) > served:
            break
        await asyncio.sleep(0.05)
    assert len(server.ended) > served and server.ended[-1] - left < 2.5  # not the 25 s the tool would wait
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        assert (await client.call_tool("get_agent_status", {"agent_id": "orders"})).is_error is False


async def test_no_request_outlives_the_configured_maximum(server: Server) -> None:
    started = time.monotonic()
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        with pytest.raises(MCPError) as timed_out:
            await client.call_tool("send_message", {"to_agent": "gate", "type": "knock", "wait": True,
                                                    "wait_seconds": 25})
    assert timed_out.value.error.code == REQUEST_TIMEOUT and "mcp.max_request_seconds" in timed_out.value.error.message
    assert time.monotonic() - started < 3.0 + 5  # max_request_seconds is 3


# --- prompts -------------------------------------------------------------------------------------------


async def test_agent_briefing_renders_purpose_goals_and_recent_decisions(server: Server, aos: AgentOperatingSystem
                                                                         ) -> None:
    await aos.register_agent(Planner("planner"))
    async with http_session(server.url, headers_for(OPERATOR)) as client:
        assert [p.name for p in (await client.list_prompts()).prompts] == ["agent_briefing"]
        before = await client.get_prompt("agent_briefing", {"agent_id": "planner"})
        await client.call_tool("send_message", {"to_agent": "planner", "type": "plan", "data": "launch-x",
                                                "wait": True})
        after = await client.get_prompt("agent_briefing", {"agent_id": "planner"})
        with pytest.raises(MCPError) as stateless:
            await client.get_prompt("agent_briefing", {"agent_id": "echo"})
        with pytest.raises(MCPError) as unknown:
            await client.get_prompt("agent_briefing", {"agent_id": "nobody"})
    text_before = before.messages[0].content.text  # type: ignore[union-attr]
    text_after = after.messages[0].content.text  # type: ignore[union-attr]
    assert "Purpose: Plan the launches" in text_before and "plans_made is 0 (target 4), 0% of the way" in \
        text_before and "- none yet" in text_before
    assert "plans_made is 1 (target 4), 25% of the way" in text_after
    assert "plan launch-x: go (decision d-" in text_after
    assert stateless.value.error.code == unknown.value.error.code == -32602
    async with http_session(server.url, headers_for(McpPrincipal.agent("orders"))) as client:
        with pytest.raises(MCPError) as forbidden:
            await client.get_prompt("agent_briefing", {"agent_id": "planner"})
    assert forbidden.value.error.code == -32003


async def test_the_function_path_is_bounded_by_the_same_maximum(aos: AgentOperatingSystem) -> None:
    # What the HTTP-triggered function calls: the worker is not told when the client leaves, so the maximum
    # is what ends a request that waits on a slow agent.
    aos.config.mcp.max_request_seconds = 1.0
    await aos.register_agent(Gate("gate"))
    Gate.opened = asyncio.Event()
    headers, body = rpc("tools/call", {"name": "send_message", "arguments": {
        "to_agent": "gate", "type": "knock", "wait": True, "wait_seconds": 25}})
    started = time.monotonic()
    try:
        status, _, raw = await handle_mcp_http(aos, "POST", "/api/mcp", {"content-type": "application/json",
                                                                          **headers}, json.dumps(body).encode())
    finally:
        Gate.opened.set()
        await close_mcp_http(aos)
    assert time.monotonic() - started < 1.0 + 5
    answer = json.loads(raw)
    assert status == 200 and answer["id"] == 1 and answer["error"]["code"] == REQUEST_TIMEOUT
