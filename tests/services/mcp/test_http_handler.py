"""`handle_mcp_http`: what the HTTP-triggered function calls with a plain request, in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aos_core import AgentOperatingSystem
from aos_core.auth import Caller
from services.mcp.http import close_mcp_http, handle_mcp_http
from tests.services.mcp.conftest import principal_header

HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream",
           "mcp-protocol-version": "2025-06-18"}


@pytest.fixture
async def kernel(aos: AgentOperatingSystem) -> AsyncIterator[AgentOperatingSystem]:
    yield aos
    await close_mcp_http(aos)


async def rpc(aos: AgentOperatingSystem, method: str, params: dict[str, Any] | None = None, *,
              headers: dict[str, str] | None = None, principal: Any = None) -> tuple[int, Any]:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}).encode()
    status, out_headers, raw = await handle_mcp_http(aos, "POST", "/api/mcp", {**HEADERS, **(headers or {})}, body,
                                                     principal)
    if status == 200:
        assert out_headers["content-type"].startswith("application/json")
    return status, json.loads(raw) if raw else None


async def test_a_plain_request_lists_and_calls_tools(kernel: AgentOperatingSystem) -> None:
    status, answer = await rpc(kernel, "tools/list")  # a function key and no principal: the key's roles
    assert status == 200 and "send_message" in {t["name"] for t in answer["result"]["tools"]}
    reader = Caller(name="viewer", roles=frozenset({"reader"}), via="principal")
    status, answer = await rpc(kernel, "tools/call", {"name": "get_agent_status",
                                                      "arguments": {"agent_id": "orders"}}, principal=reader)
    assert status == 200 and answer["result"]["structuredContent"]["type"] == "tally"
    status, answer = await rpc(kernel, "tools/call", {"name": "send_event", "arguments": {"type": "x"}},
                               principal=reader)
    assert answer["result"]["isError"] is True and "forbidden" in answer["result"]["content"][0]["text"]


async def test_the_principal_header_decides_and_an_agent_claim_scopes(kernel: AgentOperatingSystem) -> None:
    as_orders = {"x-ms-client-principal": principal_header("orders-app", "reader", agent="orders")}
    status, answer = await rpc(kernel, "tools/call", {"name": "get_context", "arguments": {"agent_id": "orders"}},
                               headers=as_orders)
    assert status == 200 and answer["result"]["structuredContent"]["agent_id"] == "orders"
    status, answer = await rpc(kernel, "tools/call", {"name": "get_context", "arguments": {"agent_id": "echo"}},
                               headers=as_orders)
    assert answer["result"]["isError"] is True


async def test_bad_requests_are_4xx_and_the_endpoint_keeps_serving(kernel: AgentOperatingSystem) -> None:
    status, answer = await rpc(kernel, "tools/list", headers={"x-ms-client-principal": "not base64 json!"})
    assert status == 401 and answer["title"] == "Unauthorized"
    reader = {"x-ms-client-principal": principal_header("viewer", "reader"), "x-aos-agent": "orders"}
    status, answer = await rpc(kernel, "tools/list", headers=reader)
    assert status == 403 and "x-aos-agent" in answer["detail"]
    status, _, raw = await handle_mcp_http(kernel, "POST", "/api/mcp", HEADERS, b"{not json")
    assert status == 400 and json.loads(raw)["error"]["code"] == -32700
    status, answer = await rpc(kernel, "no/such/method")
    assert answer["error"]["code"] == -32601
    status, answer = await rpc(kernel, "tools/call", {"name": "get_context", "arguments": {"agent_id": 5}})
    assert status == 200 and answer["result"]["isError"] is True
    status, answer = await rpc(kernel, "tools/list")
    assert status == 200


async def test_each_kernel_has_its_own_endpoint_stopped_with_it(kernel: AgentOperatingSystem, tmp_path: Any) -> None:
    # The endpoint is kept by its kernel, not by the process: a second kernel (the standby loop's, a test's)
    # gets its own, and shutting one kernel down leaves the other serving.
    from aos_core.config import AOSConfig
    from services.storage import InMemoryStateStore

    other = AgentOperatingSystem(AOSConfig(data_dir=tmp_path / "other"), store=InMemoryStateStore())
    await other.initialize()
    assert (await rpc(kernel, "tools/list"))[0] == 200 and (await rpc(other, "tools/list"))[0] == 200
    assert kernel.resources["mcp.http_endpoint"] is not other.resources["mcp.http_endpoint"]
    await other.shutdown()
    assert "mcp.http_endpoint" not in other.resources
    assert (await rpc(kernel, "tools/list"))[0] == 200
