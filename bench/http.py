"""HTTP benchmarks of the local Functions host (`aos serve`). Prints one JSON line per metric; not a test.

  baseline_rps          a bare Starlette app on uvicorn answering the same small JSON as /api/health
  health_rps            GET /api/health through `aos serve` and the real function_app
  health_vs_baseline    health_rps / baseline_rps (target >= 0.5)
  events_post_rps       POST /api/events, one event per request, to tally agents
  entity_signals_per_s  end to end: events posted in batches of 100 -> kernel -> signal_entity over HTTP ->
                        entity batches committed to SQLite (target >= 1,000/s on 2 cores)

Servers run in their own processes; the client is httpx with a bounded number of concurrent requests.
`--small` runs a quick smoke with few requests.
"""

from __future__ import annotations

import sys

# Run as a script, this file's folder comes first on sys.path and `bench/http.py` would shadow the standard
# library's `http` package that httpx and asyncio need; drop that entry before importing them.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
MASTER_KEY = "bench-master-key"  # the host page (/admin/status) needs the master key
BASELINE = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn, sys

async def health(request):
    return JSONResponse({"status": "ok", "checks": {"kernel": "ok", "live_agents": 0}})

uvicorn.run(Starlette(routes=[Route("/api/health", health)]), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning", access_log=False)
"""


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(cmd: list[str], url: str, **options: Any) -> subprocess.Popen[bytes]:
    """Start a server process and wait until `url` answers 200."""
    proc = subprocess.Popen(cmd, **options)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"{url} did not answer")
    return proc


async def rate(client: httpx.AsyncClient, requests: list[tuple[str, str, Any]], concurrency: int) -> float:
    """Requests per second for `requests` ((method, path, json)) with `concurrency` in flight."""
    queue = list(reversed(requests))

    async def worker() -> None:
        while queue:
            method, path, body = queue.pop()
            r = await client.request(method, path, json=body)
            if r.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:200]}")

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return len(requests) / (time.perf_counter() - t0)


async def run(small: bool, concurrency: int) -> None:
    n = 300 if small else 3000
    events = 1000 if small else 10000
    tmp = Path(tempfile.mkdtemp(prefix="aos-bench-http-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        procs.append(start([sys.executable, "-c", BASELINE, str(port)], f"http://127.0.0.1:{port}/api/health"))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await rate(client, [("GET", "/api/health", None)] * 50, concurrency)  # warm up
            baseline = await rate(client, [("GET", "/api/health", None)] * n, concurrency)
        emit("baseline_rps", baseline, "req/s", concurrency=concurrency)

        port = free_port()
        (tmp / "config").mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
        env.update({"AOS_CONFIG_DIR": str(tmp / "config"), "AOS_DEVHOST__FUNCTION_KEY": KEY,
                    "AOS_DEVHOST__MASTER_KEY": MASTER_KEY})
        procs.append(start(
            [sys.executable, "-m", "services.cli", "serve", "--port", str(port), "--data", str(tmp / "data"),
             "--log-level", "warning"], f"http://127.0.0.1:{port}/api/health", cwd=ROOT, env=env,
            stdout=subprocess.DEVNULL))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"x-functions-key": KEY}) as client:
            await rate(client, [("GET", "/api/health", None)] * 50, concurrency)
            health = await rate(client, [("GET", "/api/health", None)] * n, concurrency)
            emit("health_rps", health, "req/s", concurrency=concurrency)
            emit("health_vs_baseline", health / baseline, "ratio", target=0.5)

            agents = 100
            for i in range(agents):
                await client.post("/api/agents", json={"type": "tally", "id": f"t{i}", "subscribe": [f"bench.{i}"]})
            posts = [("POST", "/api/events", {"type": f"bench.{i % agents}", "id": f"one-{i}"}) for i in range(n)]
            emit("events_post_rps", await rate(client, posts, concurrency), "req/s", concurrency=concurrency)
            await settle(client, n)

            before = await processed_operations(client)
            batches = [("POST", "/api/events", [{"type": f"bench.{j % agents}", "id": f"batch-{b}-{j}"}
                                                for j in range(100)]) for b in range(events // 100)]
            t0 = time.perf_counter()
            await rate(client, batches, min(concurrency, 8))
            await settle(client, before + events)
            emit("entity_signals_per_s", events / (time.perf_counter() - t0), "signals/s", agents=agents,
                 target=1000)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(20)


async def processed_operations(client: httpx.AsyncClient) -> int:
    status = await client.get("/admin/status", headers={"x-functions-key": MASTER_KEY})
    return int(status.json()["entity_operations_processed"])


async def settle(client: httpx.AsyncClient, processed: int) -> None:
    """Wait until the host's entities have processed `processed` operations in all."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if await processed_operations(client) >= processed:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError("entity operations did not finish in 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    args = parser.parse_args()
    asyncio.run(run(args.small, args.concurrency))


if __name__ == "__main__":
    main()
