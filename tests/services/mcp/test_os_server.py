"""The OS MCP server through the mcp package's own client: each test runs in-memory and over streamable HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp import Client
from mcp.shared.exceptions import MCPError

from aos_core import AgentOperatingSystem
from services.context.mcp_server import FORBIDDEN
from services.mcp.os_server import create_os_mcp_server
from services.mcp.principal import McpPrincipal, acting_as

OPERATOR = McpPrincipal.with_roles("ops", "operator")
READER = McpPrincipal.with_roles("viewer", "reader")
ORDERS = McpPrincipal.agent("orders")
Session = Callable[[McpPrincipal], AbstractAsyncContextManager[Client]]  # the conftest fixture


async def call(session: Session, who: McpPrincipal, tool: str, **args: Any) -> tuple[bool, Any]:
    async with session(who) as client:
        result = await client.call_tool(tool, args)
    if result.is_error:
        return False, result.content[0].text  # type: ignore[union-attr]
    return True, result.structured_content


async def test_lists_tools_and_context_resources(session: Session) -> None:
    async with session(OPERATOR) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {"list_agents", "discover_agents", "get_agent_status", "send_event", "send_message", "get_context",
            "update_context", "append_memory", "search_memory"} <= tools
    assert "verify_audit_chain" in tools
    assert "context://agents/{agent_id}" in templates


async def test_list_discover_and_status(session: Session) -> None:
    ok, got = await call(session, READER, "list_agents")
    assert ok and {a["id"] for a in got["agents"]} == {"orders", "echo"}
    ok, got = await call(session, READER, "list_agents", capability="count")
    assert [a["id"] for a in got["agents"]] == ["orders"]
    ok, got = await call(session, ORDERS, "discover_agents", need="REPLY")  # agents discover their peers
    assert [a["id"] for a in got["agents"]] == ["echo"]
    ok, got = await call(session, READER, "get_agent_status", agent_id="orders")
    assert ok and got["type"] == "tally" and got["state"] == "running" and got["live"] is True
    ok, error = await call(session, READER, "get_agent_status", agent_id="nobody")
    assert not ok and "not found" in error


async def test_send_an_event_and_a_message_waiting_for_the_reply(session: Session, aos: AgentOperatingSystem
                                                                 ) -> None:
    ok, got = await call(session, OPERATOR, "send_event", type="order.created", data={"n": 1}, wait=True)
    assert ok and got["status"] == "completed"
    assert got["results"] == [{"agent_id": "orders", "status": "completed", "result": {"total": 1}}]

    ok, got = await call(session, ORDERS, "send_message", to_agent="echo", type="ping", data={"q": 42}, wait=True)
    assert ok and got["status"] == "completed"
    assert got["results"][0]["result"] == {"echo": {"q": 42}, "type": "ping", "from": "/agents/orders"}

    ok, got = await call(session, OPERATOR, "send_event", type="order.paid")  # no wait: what POST /api/events says
    record = await aos.records.get(got["id"])
    assert ok and record is not None
    assert got == {"id": record.id, "status": record.status, "status_url": f"/api/events/{record.id}"}

    ok, error = await call(session, OPERATOR, "send_event", type="order.paid", wait=True, wait_seconds=31)
    assert not ok and "wait_seconds must be from 0 to 30" in error  # api.max_wait, as ?wait= is bounded


async def test_sending_needs_operator_or_an_agent(session: Session) -> None:
    ok, error = await call(session, READER, "send_event", type="order.created")
    assert not ok and "forbidden" in error and "'operator'" in error
    ok, error = await call(session, OPERATOR, "send_message", to_agent="ghost", type="ping")
    assert not ok and "not found" in error
    ok, error = await call(session, OPERATOR, "send_event", type="bad type!")
    assert not ok and "type" in error


async def test_context_scoping_and_stale_version_through_the_os(session: Session, aos: AgentOperatingSystem
                                                               ) -> None:
    await call(session, OPERATOR, "send_event", type="order.created", wait=True)
    ok, ctx = await call(session, ORDERS, "get_context", agent_id="orders")
    assert ok and ctx["state"]["total"] == 1
    version = ctx["version"]
    ok, got = await call(session, ORDERS, "update_context", agent_id="orders", patch={"note": "hi"},
                         expected_version=version)
    assert ok and got["version"] == version + 1
    ok, error = await call(session, ORDERS, "update_context", agent_id="orders", patch={"note": "again"},
                           expected_version=version)
    assert not ok and "stale version" in error

    # The live agent's next commit loses nothing: it reloads after the conflict and applies on top.
    await call(session, OPERATOR, "send_event", type="order.created", wait=True)
    ok, ctx = await call(session, OPERATOR, "get_context", agent_id="orders")
    assert ctx["state"]["total"] == 2 and ctx["state"]["note"] == "hi"

    ok, error = await call(session, McpPrincipal.agent("echo"), "get_context", agent_id="orders")
    assert not ok and "forbidden" in error
    ok, error = await call(session, OPERATOR, "get_context", agent_id="nobody")
    assert not ok and "not registered" in error
    async with session(McpPrincipal.agent("echo")) as client:
        try:
            await client.read_resource("context://agents/orders")
        except MCPError as exc:
            assert exc.error.code == FORBIDDEN
        else:
            raise AssertionError("echo read orders' context")
    async with session(OPERATOR) as client:
        result = await client.read_resource("context://agents/orders")
    assert json.loads(result.contents[0].text)["state"]["note"] == "hi"  # type: ignore[union-attr]


async def test_verify_audit_chain_checks_the_kernels_audit_log(aos: AgentOperatingSystem) -> None:
    assert aos.audit is not None
    await aos.audit.append("tester", "test.action", "thing/1", {"n": 1})
    server = create_os_mcp_server(aos)
    with acting_as(OPERATOR):
        async with Client(server) as client:
            result = await client.call_tool("verify_audit_chain", {})
    assert result.structured_content is not None
    assert result.structured_content["ok"] is True and result.structured_content["count"] >= 1
    with acting_as(ORDERS):
        async with Client(server) as client:
            result = await client.call_tool("verify_audit_chain", {})
    assert result.is_error
