"""The mcp package's own streamable HTTP client against `/api/mcp` of function_app on the local host."""

from __future__ import annotations

from typing import Any

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.services.devhost.conftest import FUNCTION_KEY
from tests.support.host_process import KEY


async def test_an_mcp_client_lists_tools_and_sends_an_event_through_the_function(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host, headers={"x-functions-key": FUNCTION_KEY}) as http:
        created = await http.post("/api/agents", json={"type": "tally", "id": "mcp-t1", "subscribe": ["mcp.*"]})
        assert created.status_code in (200, 201)
    async with create_mcp_http_client(headers={"x-functions-key": FUNCTION_KEY}) as client_http, \
            Client(streamable_http_client(f"{in_process_host}/api/mcp", http_client=client_http)) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"list_agents", "send_event", "get_context", "verify_audit_chain"} <= tools
        sent = await client.call_tool("send_event", {"type": "mcp.ping", "data": {"n": 1}, "wait": True})
        assert not sent.is_error, sent
        assert sent.structured_content is not None and sent.structured_content["status"] == "completed"
        context = await client.call_tool("get_context", {"agent_id": "mcp-t1"})
        assert not context.is_error and (context.structured_content or {})["state"]["total"] == 1
        verified = await client.call_tool("verify_audit_chain", {})
        assert (verified.structured_content or {}).get("ok") is True


async def test_without_a_key_the_endpoint_refuses(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host) as http:
        response = await http.post("/api/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401



async def test_send_with_wait_answers_like_post_events_with_wait(make_host: Any) -> None:
    # `aos serve` in its own process: the perpetual agent is reached through its Durable entity, so accepting
    # an event does not mean it was handled, and only waiting on the event's record tells.
    host = make_host(config={"agents": {"instances": [
        {"type": "tally", "id": "mcp-w1", "config": {"subscribe": ["waited.*"]}}]}})
    host.start()
    async with host.client() as http:
        posted = await http.post("/api/events?wait=10", json={"specversion": "1.0", "id": "w-0", "source": "t",
                                                              "type": "waited.http"})
        assert posted.status_code == 200 and posted.json()["status"] == "completed"
        async with create_mcp_http_client(headers={"x-functions-key": KEY}) as client_http, \
                Client(streamable_http_client(f"{host.base}/api/mcp", http_client=client_http)) as client:
            sent = await client.call_tool("send_event", {"type": "waited.mcp", "wait": True, "wait_seconds": 10})
            message = await client.call_tool("send_message", {"to_agent": "mcp-w1", "type": "waited.direct",
                                                              "wait": True, "wait_seconds": 10})
        for result in (sent, message):
            got = result.structured_content or {}
            assert not result.is_error and got["status"] == "completed", got
            assert got == (await http.get(got["status_url"])).json()  # what GET /api/events/{id} says
        assert [r["result"]["total"] for r in (message.structured_content or {})["results"]] == [3]
