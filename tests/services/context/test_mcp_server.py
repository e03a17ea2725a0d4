"""ContextMCPServer over MCP, driven by the mcp package's own client over in-memory sessions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from aos_core.ports import StateStore
from services.context import ContextMCPServer
from services.context.mcp_server import FORBIDDEN, create_context_mcp_server
from services.mcp.principal import McpPrincipal, acting_as
from services.storage import InMemoryStateStore, SqliteStateStore

OPERATOR = McpPrincipal.with_roles("ops", "operator")
ADMIN = McpPrincipal.with_roles("root", "admin")
CEO, CFO = McpPrincipal.agent("ceo"), McpPrincipal.agent("cfo")


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    s: StateStore = SqliteStateStore(tmp_path / "state.db") if request.param == "sqlite" else InMemoryStateStore()
    yield s
    await s.close()


@pytest.fixture
def server(store: StateStore) -> MCPServer:
    return create_context_mcp_server(store)


async def call(server: MCPServer, who: McpPrincipal, tool: str, **args: Any) -> tuple[bool, Any]:
    """(ok, structured result or the error text) of one tool call made as `who`."""
    with acting_as(who):
        async with Client(server) as client:
            result = await client.call_tool(tool, args)
    if result.is_error:
        return False, result.content[0].text  # type: ignore[union-attr]
    return True, result.structured_content


async def read(server: MCPServer, who: McpPrincipal, uri: str) -> Any:
    """The resource's JSON; a JSON-RPC error is raised as MCPError (out of the session, so unwrapped)."""
    with acting_as(who):
        async with Client(server) as client:
            try:
                result = await client.read_resource(uri)
            except MCPError as exc:
                error = exc
            else:
                return json.loads(result.contents[0].text)  # type: ignore[union-attr]
    raise error


async def test_tools_and_resource_templates_are_listed_with_typed_schemas(server: MCPServer) -> None:
    with acting_as(OPERATOR):
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    assert {"get_context", "update_context", "append_memory", "search_memory"} <= set(tools)
    update = tools["update_context"].input_schema
    assert set(update["required"]) == {"agent_id", "patch", "expected_version"}
    assert update["properties"]["expected_version"]["minimum"] == 0
    assert update["properties"]["patch"]["type"] == "object"
    assert templates == {"context://agents/{agent_id}", "context://agents/{agent_id}/memory",
                         "context://agents/{agent_id}/history/{version}"}


async def test_an_agent_reads_and_patches_its_own_context(server: MCPServer, store: StateStore) -> None:
    ok, got = await call(server, CEO, "get_context", agent_id="ceo")
    assert ok and got["version"] == 0 and got["state"] == {}
    ok, got = await call(server, CEO, "update_context", agent_id="ceo", patch={"okrs": ["grow"], "n": 1},
                         expected_version=0)
    assert ok and got["version"] == 1
    ok, got = await call(server, CEO, "update_context", agent_id="ceo", patch={"n": None, "k": {"a": 1}},
                         expected_version=1)
    assert ok and got["state"] == {"okrs": ["grow"], "k": {"a": 1}}
    stored = ContextMCPServer("ceo", store)  # what the agent itself loads next time
    await stored.initialize()
    assert stored.state == {"okrs": ["grow"], "k": {"a": 1}} and stored.version == 2
    version_1 = await read(server, CEO, "context://agents/ceo/history/1")
    assert version_1["version"] == 1 and version_1["state"] == {"okrs": ["grow"], "n": 1}


async def test_a_stale_version_is_a_tool_error_and_changes_nothing(server: MCPServer, store: StateStore) -> None:
    agent_side = ContextMCPServer("ceo", store)
    await agent_side.initialize()
    await agent_side.save_state({"budget": 10})  # version 1, written by the agent meanwhile
    ok, error = await call(server, CEO, "update_context", agent_id="ceo", patch={"budget": 99}, expected_version=0)
    assert not ok
    assert "stale version" in error and "version 0" in error and "stored version is 1" in error
    ok, got = await call(server, CEO, "get_context", agent_id="ceo")
    assert got["state"] == {"budget": 10} and got["version"] == 1


async def test_scoping_agents_see_their_own_and_granted_operators_read_all(server: MCPServer) -> None:
    await call(server, CFO, "update_context", agent_id="cfo", patch={"cash": 5}, expected_version=0)
    ok, error = await call(server, CEO, "get_context", agent_id="cfo")
    assert not ok and "forbidden: agent:ceo may not read the context of 'cfo'" in error
    with pytest.raises(MCPError) as denied:
        await read(server, CEO, "context://agents/cfo")
    assert denied.value.error.code == FORBIDDEN

    ok, _ = await call(server, CEO, "grant_context_access", agent_id="cfo", grantee="ceo")  # not the owner
    assert not ok
    ok, got = await call(server, CFO, "grant_context_access", agent_id="cfo", grantee="ceo", mode="read")
    assert ok and got["grants"] == {"ceo": "read"}
    assert (await read(server, CEO, "context://agents/cfo"))["state"] == {"cash": 5}
    ok, error = await call(server, CEO, "update_context", agent_id="cfo", patch={"cash": 0}, expected_version=1)
    assert not ok and "may not write" in error  # read grant only

    ok, got = await call(server, OPERATOR, "get_context", agent_id="cfo")
    assert ok and got["state"] == {"cash": 5}
    ok, error = await call(server, OPERATOR, "update_context", agent_id="cfo", patch={"cash": 0}, expected_version=1)
    assert not ok and "forbidden" in error  # operators read, admins write
    ok, got = await call(server, ADMIN, "update_context", agent_id="cfo", patch={"cash": 7}, expected_version=1)
    assert ok and got["version"] == 2

    await call(server, CFO, "revoke_context_access", agent_id="cfo", grantee="ceo")
    ok, _ = await call(server, CEO, "get_context", agent_id="cfo")
    assert not ok


async def test_no_caller_gets_nothing(server: MCPServer) -> None:
    async with Client(server) as client:  # no acting_as: fails closed
        result = await client.call_tool("get_context", {"agent_id": "ceo"})
    assert result.is_error and "no authenticated caller" in result.content[0].text  # type: ignore[union-attr]
    ok, error = await call(server, McpPrincipal.with_roles("viewer", "reader"), "get_context", agent_id="ceo")
    assert not ok and "forbidden" in error


async def test_memory_append_search_and_resource(server: MCPServer) -> None:
    for entry in ["Q3 revenue up 12%", {"note": "hire a CFO", "tag": "people"}, "Revenue forecast revised"]:
        ok, got = await call(server, CEO, "append_memory", agent_id="ceo", entry=entry)
        assert ok
    assert got["seq"] == 3
    ok, got = await call(server, CEO, "search_memory", agent_id="ceo", query="REVENUE")
    assert [m["entry"] for m in got["matches"]] == ["Revenue forecast revised", "Q3 revenue up 12%"]
    ok, got = await call(server, CEO, "search_memory", agent_id="ceo", query="people", limit=1)
    assert [m["seq"] for m in got["matches"]] == [2]
    memory = await read(server, CEO, "context://agents/ceo/memory")
    assert [m["seq"] for m in memory] == [1, 2, 3]


async def test_invalid_arguments_are_clear_errors_and_the_server_keeps_going(server: MCPServer) -> None:
    ok, error = await call(server, ADMIN, "update_context", agent_id="CEO!", patch={}, expected_version=0)
    assert not ok and "agent_id" in error
    ok, error = await call(server, ADMIN, "update_context", agent_id="ceo", patch=[1], expected_version=-1)
    assert not ok and "patch" in error and "expected_version" in error
    ok, error = await call(server, ADMIN, "search_memory", agent_id="ceo", query="")
    assert not ok and "query" in error
    with pytest.raises(MCPError, match="version must be a whole number"):
        await read(server, ADMIN, "context://agents/ceo/history/latest")
    with pytest.raises(MCPError, match="version must be a whole number"):  # a digit to str.isdigit, not to int
        await read(server, ADMIN, "context://agents/ceo/history/%C2%B2")
    with pytest.raises(MCPError, match="not in the history"):
        await read(server, ADMIN, "context://agents/ceo/history/7")
    ok, got = await call(server, ADMIN, "get_context", agent_id="ceo")
    assert ok and got["version"] == 0
