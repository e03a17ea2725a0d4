"""MCP benchmarks. Prints one JSON line per metric; not a test (run by hand, or with --small in CI).

  tool_calls_per_s_memory      get_context through the mcp package's Client over an in-memory session
  tool_calls_per_s_http        the same through the streamable HTTP client to /api/mcp on uvicorn (local port)
  tool_calls_per_s_handler     handle_mcp_http in-process (what the Functions route calls), raw JSON-RPC posts
  update_calls_per_s_memory    update_context (a committed write per call, SQLite) over an in-memory session

Each runs sequential calls on one open session against a kernel with in-memory (or SQLite) storage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path, and this file is named like the `mcp` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import uvicorn  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

from agents.tally import TallyAgent  # noqa: E402
from aos_core import AgentOperatingSystem, AOSConfig  # noqa: E402
from services.mcp.http import McpHttpApp, close_mcp_http, handle_mcp_http  # noqa: E402
from services.mcp.principal import McpPrincipal, acting_as  # noqa: E402
from services.storage import InMemoryStateStore, SqliteStateStore  # noqa: E402

AGENT = McpPrincipal.agent("orders")


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 1), "unit": unit, **extra}), flush=True)


async def kernel(data: Path, store: Any) -> AgentOperatingSystem:
    aos = AgentOperatingSystem(AOSConfig(data_dir=data), store=store)
    await aos.initialize()
    await aos.register_agent(TallyAgent("orders"))
    return aos


async def rate(calls: int, one: Any) -> float:
    for _ in range(min(20, calls)):  # warm up
        await one()
    start = time.perf_counter()
    for _ in range(calls):
        await one()
    return calls / (time.perf_counter() - start)


async def bench_memory(aos: AgentOperatingSystem, calls: int) -> None:
    app = McpHttpApp(aos)
    with acting_as(AGENT):
        async with Client(app.server) as client:
            value = await rate(calls, lambda: client.call_tool("get_context", {"agent_id": "orders"}))
    emit("tool_calls_per_s_memory", value, "calls/s", calls=calls)


async def bench_http(aos: AgentOperatingSystem, calls: int) -> None:
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
    # every keep-alive response waits out the peer's delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    server = uvicorn.Server(uvicorn.Config(McpHttpApp(aos), log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/mcp"
    try:
        async with create_mcp_http_client(headers={"x-aos-agent": "orders"}) as http, \
                Client(streamable_http_client(url, http_client=http)) as client:
            value = await rate(calls, lambda: client.call_tool("get_context", {"agent_id": "orders"}))
    finally:
        server.should_exit = True
        await task
        sock.close()
    emit("tool_calls_per_s_http", value, "calls/s", calls=calls)


async def bench_handler(aos: AgentOperatingSystem, calls: int) -> None:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream",
               "mcp-protocol-version": "2025-06-18", "x-aos-agent": "orders"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "get_context", "arguments": {"agent_id": "orders"}}}).encode()

    async def one() -> None:
        status, _, _ = await handle_mcp_http(aos, "POST", "/api/mcp", headers, body)
        assert status == 200

    value = await rate(calls, one)
    await close_mcp_http(aos)
    emit("tool_calls_per_s_handler", value, "calls/s", calls=calls)


async def bench_updates(data: Path, calls: int) -> None:
    store = SqliteStateStore(data / "state.db")
    aos = await kernel(data, store)
    version = 0

    async def one() -> None:
        nonlocal version
        result = await client.call_tool("update_context", {"agent_id": "orders", "patch": {"n": version},
                                                           "expected_version": version})
        assert not result.is_error, result.content
        version = result.structured_content["version"]  # type: ignore[index]

    with acting_as(AGENT):
        async with Client(McpHttpApp(aos).server) as client:
            version = (await client.call_tool("get_context", {"agent_id": "orders"})).structured_content["version"]  # type: ignore[index]
            value = await rate(calls, one)
    await aos.shutdown()
    await store.close()
    emit("update_calls_per_s_memory", value, "calls/s", calls=calls, storage="sqlite")


async def main(small: bool) -> None:
    calls = 200 if small else 2000
    with tempfile.TemporaryDirectory() as tmp:
        store = InMemoryStateStore()
        aos = await kernel(Path(tmp) / "a", store)
        await bench_memory(aos, calls)
        await bench_http(aos, calls)
        await bench_handler(aos, calls)
        await aos.shutdown()
        await bench_updates(Path(tmp), calls)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    asyncio.run(main(parser.parse_args().small))
