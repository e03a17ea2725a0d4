"""Orchestrations on the local host: one JSON line per metric; not a test.

  fan_out_activities_per_s   a fan-out/fan-in over N no-op activities, started with the real Durable client's
                             webhook and timed until the instance completes (each completion is one episode:
                             a replay of the growing history and one SQLite commit)
  sequential_activities_per_s  N activities one after another in one orchestrator (N episodes, N commits)

The host runs in this process on uvicorn (as `aos serve` does), with a small app defined here.
`--small` runs a quick smoke with few activities.
"""

from __future__ import annotations

import sys

# Run as a script, this file's folder comes first on sys.path and `bench/http.py` would shadow the standard
# library's `http` package; drop that entry before importing anything that needs it (as bench/http.py does).
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import azure.durable_functions as df  # noqa: E402
import azure.functions as func  # noqa: E402
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from services.devhost.index import index_functions  # noqa: E402
from services.devhost.instances import free_port  # noqa: E402
from services.devhost.server import DevHost  # noqa: E402
from services.devhost.settings import HostSettings  # noqa: E402

MASTER_KEY = "bench-master-key"
WEBHOOKS = "/runtime/webhooks/durabletask/"


def build_app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.activity_trigger(input_name="value")
    def echo(value: int) -> int:
        return value

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        results = yield context.task_all([context.call_activity("echo", i) for i in range(context.get_input())])
        return len(results)

    @app.orchestration_trigger(context_name="context")
    def sequence(context: df.DurableOrchestrationContext):  # type: ignore[no-untyped-def]
        for i in range(context.get_input()):
            yield context.call_activity("echo", i)
        return context.get_input()

    return app


async def run(http: httpx.AsyncClient, name: str, n: int) -> float:
    started = time.perf_counter()
    r = await http.post(f"{WEBHOOKS}orchestrators/{name}", json=json.dumps(n))
    instance = r.json()["id"]
    while True:
        status = await http.get(f"{WEBHOOKS}instances/{instance}")
        if status.json()["runtimeStatus"] == "Completed":
            return time.perf_counter() - started
        await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick smoke run")
    args = parser.parse_args()
    fan_n, seq_n = (20, 10) if args.small else (500, 100)
    with tempfile.TemporaryDirectory() as tmp:
        settings = HostSettings(app_dir=Path(tmp), data_dir=Path(tmp) / "data", port=free_port(),
                                function_key="bench", master_key=MASTER_KEY)
        host = DevHost(index_functions(build_app()), settings)
        server = uvicorn.Server(uvicorn.Config(host.app, host="127.0.0.1", port=settings.port, log_level="warning"))
        thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)

        async def measure() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(base_url=settings.base_url, headers={"x-functions-key": MASTER_KEY},
                                         timeout=120) as http:
                fan = await run(http, "fan_out", fan_n)
                seq = await run(http, "sequence", seq_n)
            return [{"metric": "fan_out_activities_per_s", "value": round(fan_n / fan, 1), "activities": fan_n},
                    {"metric": "sequential_activities_per_s", "value": round(seq_n / seq, 1), "activities": seq_n}]

        try:
            for line in asyncio.run(measure()):
                print(json.dumps(line))
        finally:
            server.should_exit = True
            thread.join(15)


if __name__ == "__main__":
    main()
