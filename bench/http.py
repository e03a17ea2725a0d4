"""HTTP benchmarks of the local Functions host (`aos serve`), load driven by wrk. One JSON line per metric; not a test.

  baseline_rps          GET on a bare Starlette app on uvicorn answering the same small JSON as /api/health
  health_rps            GET /api/health through `aos serve` and the real function_app (one instance)
  health_vs_baseline    health_rps / baseline_rps (target >= 0.5)
  baseline_post_rps     POST on the bare app, which reads the body and answers 202 with a small JSON
  messages_rps          POST /api/agents/{id}/messages to 100 live tally agents, one new event id per request, each
                        committed before its 202; with its p99 (target < 20 ms at 32 connections). Counted only when,
                        afterwards, every agent's total grew by exactly the number of ids accepted for it (each
                        accepted id applied once) and every request was answered 2xx
  messages_vs_baseline  messages_rps / baseline_post_rps (target >= 0.25)
  floor_rps             the same load against the least an app can do on this path (bench/durable_floor_app.py on
                        the same local host: an HTTP function that signals a counter entity through the Durable
                        client and answers 202 once the signal is queued, as AOS does; no kernel, no storage of its
                        own), with its p99 and CPU per request (which includes the entities' work). Counted only
                        when the counters applied every message answered and no more than were sent
  floor_vs_baseline     floor_rps / baseline_post_rps: the most messages_vs_baseline can be on this host
  messages_vs_floor     messages_rps / floor_rps: the share of the path's own limit that AOS reaches
  messages_vs_floor_median   with --repeat N: AOS and the floor app run alternately N times (the bare POST once)
                        and this is the median of the N ratios, with the lowest and highest; each run's lines carry
                        `run`. The floor moves with the machine's load as much as AOS does; a pair run in the same
                        minutes does not
  events_per_s          end to end, for `aos serve --instances 1` and `--instances 2`: events POSTed to
                        /api/events in batches of 100 (unique ids) to 100 tally agents for the run's duration, counted
                        from the first request until every accepted event is applied by its agent's entity

Load comes from wrk (`apt-get install wrk`); the bench stops without it. A figure is reported only when the
servers, not the client, were the bottleneck: when wrk used more than half as much CPU as the server processes
did over the run, the line says `refused` with the reason instead of a value (client-bound numbers say nothing
about the host). `--small` runs short rounds.
"""

from __future__ import annotations

import sys

# Run as a script, this file's folder comes first on sys.path and `bench/http.py` would shadow the standard
# library's `http` package that httpx and asyncio need; drop that entry before importing them.
sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from services.devhost.instances import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-key"
MASTER_KEY = "bench-master-key"  # the host page (/admin/status) needs the master key
ADMIN = {"x-functions-key": MASTER_KEY}
AGENTS = 100
BATCH = 100  # events per POST, as the events target counts them
ROUNDS = ("health", "messages", "events")
CLIENT_SHARE_LIMIT = 0.5  # wrk's CPU over the servers' CPU above which a figure is client-bound
BASELINE = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import uvicorn, sys

async def health(request):
    return JSONResponse({"status": "ok", "checks": {"kernel": "ok", "live_agents": 0}})

async def post(request):
    await request.body()
    return JSONResponse({"id": "e", "status": "pending", "status_url": "/api/events/e"}, status_code=202)

uvicorn.run(Starlette(routes=[Route("/api/health", health), Route("/api/post", post, methods=["POST"])]),
            host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""
# Each wrk thread sends messages with ids of its own (run, thread, counter) to agent m<counter % agents> and writes
# the id of every request it sends, and of every one accepted, to files of its own, for the check afterwards.
MESSAGES_LUA = """
local run, agents = os.getenv("AOS_BENCH_RUN"), tonumber(os.getenv("AOS_BENCH_AGENTS"))
local ids = os.getenv("AOS_BENCH_IDS")
local threads, made = {}, 0
function setup(thread) made = made + 1; thread:set("tid", made); table.insert(threads, thread) end
local counter, prefix, sent, out = 0, "", nil, nil
accepted = 0  -- a global: `done` reads it from each thread
function init(args)
  prefix = run .. "-" .. tostring(tid) .. "-"
  sent, out = io.open(ids .. ".sent." .. tostring(tid), "w"), io.open(ids .. ".accepted." .. tostring(tid), "w")
  sent:setvbuf("line")
  out:setvbuf("line")
end
function request()
  counter = counter + 1
  sent:write(prefix, counter, "\\n")
  return wrk.format("POST", "/api/agents/m" .. tostring(counter % agents) .. "/messages",
                    {["Content-Type"] = "application/json", ["x-functions-key"] = os.getenv("AOS_BENCH_KEY")},
                    string.format('{"id":"%s%d","type":"bench.message","data":{"n":%d}}', prefix, counter, counter))
end
function response(status, headers, body)
  if status == 202 or status == 200 then
    accepted = accepted + 1
    out:write(string.match(body, '"id":"([^"]+)"'), "\\n")
  end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("accepted") end
  io.write(string.format('WRK {"requests": %d, "accepted": %d, "non_2xx": %d, "socket_errors": %d, "seconds": %f, '
           .. '"p50_ms": %.2f, "p99_ms": %.2f}\\n', summary.requests, total, summary.errors.status,
           summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
           summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""
POST_LUA = """
wrk.method, wrk.body = "POST", '{"id":"e","type":"bench.message","data":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  io.write(string.format('WRK {"requests": %d, "non_2xx": %d, "seconds": %f, "p50_ms": %.2f, "p99_ms": %.2f}\\n',
           summary.requests, summary.errors.status, summary.duration / 1e6, latency:percentile(50) / 1e3,
           latency:percentile(99) / 1e3))
end
"""
# Each wrk thread posts batches of events with ids of its own (run, thread, counter); `done` prints the counts.
EVENTS_LUA = """
local run, agents, batch = os.getenv("AOS_BENCH_RUN"), tonumber(os.getenv("AOS_BENCH_AGENTS")),
    tonumber(os.getenv("AOS_BENCH_BATCH"))
local threads, made = {}, 0
function setup(thread) made = made + 1; thread:set("tid", made); table.insert(threads, thread) end
local counter, prefix = 0, ""
accepted = 0  -- a global: `done` reads it from each thread
function init(args) prefix = run .. "-" .. tostring(tid) .. "-" end
function request()
  local parts = {}
  for i = 1, batch do
    counter = counter + 1
    parts[i] = string.format('{"id":"%s%d","type":"bench.%d","source":"bench"}', prefix, counter, counter % agents)
  end
  return wrk.format("POST", "/api/events", {["Content-Type"] = "application/json",
                    ["x-functions-key"] = os.getenv("AOS_BENCH_KEY")}, "[" .. table.concat(parts, ",") .. "]")
end
function response(status, headers, body) if status == 202 or status == 200 then accepted = accepted + 1 end end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("accepted") end
  io.write(string.format('WRK {"requests": %d, "accepted": %d, "socket_errors": %d}\\n', summary.requests, total,
           summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""
GET_LUA = """
wrk.headers["x-functions-key"] = os.getenv("AOS_BENCH_KEY")
function done(summary, latency, requests)
  io.write(string.format('WRK {"requests": %d, "non_2xx": %d, "seconds": %f, "p50_ms": %.2f, "p99_ms": %.2f}\\n',
           summary.requests, summary.errors.status, summary.duration / 1e6, latency:percentile(50) / 1e3,
           latency:percentile(99) / 1e3))
end
"""


def emit(metric: str, value: float | None, unit: str, **extra: Any) -> None:
    line: dict[str, Any] = {"metric": metric, "value": None if value is None else round(value, 3), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


def start(cmd: list[str], url: str, **options: Any) -> subprocess.Popen[bytes]:
    """Start a server process and wait until `url` answers 200."""
    proc = subprocess.Popen(cmd, **options)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # waiting for a process to listen
    proc.kill()
    raise RuntimeError(f"{url} did not answer")


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU seconds the processes have used so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: str, seconds: float, connections: int, env: dict[str, str], server_pids: list[int]
        ) -> tuple[dict[str, Any], str | None]:
    """Run wrk against `url`; its `WRK {...}` summary, and why the figure is client-bound (None if it is not)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    server_before, client_before = cpu_seconds(server_pids), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "30s",
                              "-s", lua.name, url], capture_output=True, text=True, check=True,
                             env={**os.environ, **env}).stdout
    finally:
        os.unlink(lua.name)
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (client_after.ru_utime - client_before.ru_utime) + (client_after.ru_stime - client_before.ru_stime)
    server = cpu_seconds(server_pids) - server_before
    summary = json.loads(next(line for line in out.splitlines() if line.startswith("WRK "))[4:])
    summary.update(client_cpu_s=round(client, 2), server_cpu_s=round(server, 2),
                   server_cpu_us_per_request=round(server / max(1, summary["requests"]) * 1e6))
    bound = None
    if server <= 0 or client / server > CLIENT_SHARE_LIMIT:
        bound = f"client-bound: wrk used {client:.1f} CPU s, the servers {server:.1f}"
    return summary, bound


def report(metric: str, value: float, unit: str, bound: str | None, **extra: Any) -> None:
    if bound is not None:
        emit(metric, None, unit, refused=bound, **extra)
    else:
        emit(metric, value, unit, **extra)


def host_env(tmp: Path) -> dict[str, str]:
    (tmp / "config").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AOS_")}
    env.update({"AOS_CONFIG_DIR": str(tmp / "config"), "AOS_DEVHOST__FUNCTION_KEY": KEY,
                "AOS_DEVHOST__MASTER_KEY": MASTER_KEY})
    return env


def bare_round(metric: str, path: str, script: str, seconds: float, connections: int, env: dict[str, str]
               ) -> tuple[float, str | None]:
    """One wrk round against the bare Starlette app; its req/s and why it is client-bound (None if it is not)."""
    port = free_port()
    proc = start([sys.executable, "-c", BASELINE, str(port)], f"http://127.0.0.1:{port}/api/health")
    try:
        summary, bound = wrk(f"http://127.0.0.1:{port}{path}", script, seconds, connections, env, [proc.pid])
        rps = summary["requests"] / summary["seconds"]
        report(metric, rps, "req/s", bound, connections=connections, **summary)
        return rps, bound
    finally:
        proc.terminate()
        proc.wait(20)


def serve(tmp: Path, port: int, app: str = "function_app:app", app_dir: Path = ROOT) -> subprocess.Popen[bytes]:
    """`aos serve` (one instance) of `app` (the real function_app unless told) over a fresh data folder in `tmp`."""
    return start([sys.executable, "-m", "services.cli", "serve", "--port", str(port), "--data", str(tmp / "data"),
                  "--log-level", "warning", "--app", app, "--app-dir", str(app_dir)],
                 f"http://127.0.0.1:{port}/api/health", cwd=ROOT, env=host_env(tmp), stdout=subprocess.DEVNULL)


def instances(base: str) -> list[dict[str, Any]]:
    return [i for i in httpx.get(f"{base}/admin/status", headers=ADMIN, timeout=30).json()["instances"]
            if i["live"]]


def delivered(base: str) -> int:
    """Events the bench's agents' entities have taken in: the sum of their `delivered` counts, committed with each
    entity batch (one entity operation may carry several events, so the host's operation count is not it)."""
    return sum(int(json.loads(e["state"] or "{}").get("delivered", 0)) for e in entities(base, "agent")
               if e["key"].startswith("t"))


def entities(base: str, name: str) -> list[dict[str, Any]]:
    """The host's entities named `name`, with their state as stored (JSON text)."""
    return [e for e in httpx.get(f"{base}/admin/status", headers=ADMIN, timeout=30).json()["entities"]
            if e["name"] == name]


def events_per_s(count: int, seconds: float, connections: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix=f"aos-bench-http-{count}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start([sys.executable, "-m", "services.cli", "serve", "--port", str(port), "--data", str(tmp / "data"),
                  "--log-level", "warning", "--instances", str(count)], f"{base}/api/health", cwd=ROOT,
                 env=host_env(tmp), stdout=subprocess.DEVNULL)
    try:
        with httpx.Client(base_url=base, headers={"x-functions-key": KEY}, timeout=60) as client:
            for i in range(AGENTS):
                r = client.post("/api/agents", json={"type": "tally", "id": f"t{i}", "subscribe": [f"bench.{i}"]})
                r.raise_for_status()
            for n in range(2 * count):  # warm every instance's kernel and every agent before measuring
                warm = [{"id": f"warm{count}-{n}-{i}", "type": f"bench.{i}", "source": "bench"} for i in range(AGENTS)]
                client.post("/api/events", json=warm).raise_for_status()
        deadline = time.monotonic() + 300
        while delivered(base) < 2 * count * AGENTS and time.monotonic() < deadline:
            time.sleep(0.1)  # polling the host's progress
        before = delivered(base)
        live = instances(base)
        pids = sorted({proc.pid, *(i["pid"] for i in live)})
        env = {"AOS_BENCH_RUN": f"run{count}", "AOS_BENCH_AGENTS": str(AGENTS), "AOS_BENCH_BATCH": str(BATCH),
               "AOS_BENCH_KEY": KEY}
        started, cpu = time.perf_counter(), cpu_seconds(pids)
        summary, bound = wrk(base, EVENTS_LUA, seconds, connections, env, pids)
        # Requests still in flight when wrk stopped are taken in too: wait until the entities stop taking events
        # in, and count every event they took, from the first request to the last event applied.
        accepted, deadline = summary["accepted"] * BATCH, time.monotonic() + 600
        taken, last_change, cpu_then = before, time.perf_counter(), cpu_seconds(pids)
        while taken < before + accepted or time.perf_counter() - last_change < 1.0:
            if time.monotonic() > deadline:
                raise RuntimeError("accepted events were not all applied within 600 s")
            time.sleep(0.1)  # polling the host's progress
            now = delivered(base)
            if now != taken:
                taken, last_change, cpu_then = now, time.perf_counter(), cpu_seconds(pids)
        events, elapsed, cpu = taken - before, last_change - started, cpu_then - cpu
        with httpx.Client(base_url=base, headers={"x-functions-key": KEY}, timeout=60) as client:
            counted = sum(totals(client, "t").values())  # each event taken in must be applied exactly once
        if counted != taken:
            bound = bound or f"the agents counted {counted} events, their entities took in {taken}"
        report("events_per_s", events / elapsed, "events/s", bound, instances=count, events=events,
               batch=BATCH, agents=AGENTS, connections=connections, seconds=round(elapsed, 2), **summary,
               server_cpu_us_per_event=round(cpu / max(events, 1) * 1e6))
    finally:
        proc.terminate()
        proc.wait(60)


def health(seconds: float, connections: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="aos-bench-http-health-"))
    env = {"AOS_BENCH_KEY": KEY}
    baseline, bound = bare_round("baseline_rps", "/api/health", GET_LUA, seconds, connections, env)
    port = free_port()
    proc = serve(tmp, port)
    try:
        summary, host_bound = wrk(f"http://127.0.0.1:{port}/api/health", GET_LUA, seconds, connections, env,
                                  [proc.pid])
        rps = summary["requests"] / summary["seconds"]
        report("health_rps", rps, "req/s", host_bound, connections=connections, **summary)
        report("health_vs_baseline", rps / baseline, "ratio", bound or host_bound, target=0.5)
    finally:
        proc.terminate()
        proc.wait(20)


def totals(client: httpx.Client, prefix: str = "m") -> dict[str, int]:
    """Each bench agent's tally total (agents `<prefix>0`...), from its committed context."""
    return {f"{prefix}{i}": int(client.get(f"/api/agents/{prefix}{i}/context").json()["state"].get("total", 0))
            for i in range(AGENTS)}


def read_ids(folder: Path, kind: str) -> list[str]:
    return [line for f in sorted(folder.glob(f"ids.{kind}.*")) for line in f.read_text().split()]


def exactly_once(client: httpx.Client, before: dict[str, int], accepted: list[str], sent: list[str]) -> str | None:
    """Why the run does not count (None when it does): every accepted id must be applied, and each agent's total
    must have grown by exactly the number of distinct ids applied to it. A request still in flight when wrk
    stopped has no answer but may have been applied: it is looked up like the others (applied or unknown)."""
    answered = set(accepted)
    if len(set(sent)) != len(sent) or not answered <= set(sent):
        return "the ids sent were not distinct"
    expected = dict.fromkeys(before, 0)
    deadline = time.monotonic() + 300
    for event_id in sent:  # msg-<thread>-<counter> went to m<counter % agents>
        while True:
            answer = client.get(f"/api/events/{event_id}")
            status = answer.json().get("status") if answer.status_code == 200 else None
            if status != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling the host's progress
        if status == "completed":
            expected[f"m{int(event_id.rsplit('-', 1)[1]) % AGENTS}"] += 1
        elif answer.status_code != 404 or event_id in answered:
            return f"event {event_id} ended {status or answer.status_code}"
    applied = {agent: total - before[agent] for agent, total in totals(client).items()}
    wrong = {a: (applied[a], n) for a, n in expected.items() if applied[a] != n}
    return f"not applied exactly once (agent: applied, ids applied): {dict(list(wrong.items())[:5])}" if wrong else None


def messages(seconds: float, connections: int, repeat: int = 1) -> None:
    """The bare POST once, then AOS and the floor app alternately, `repeat` times: the pairs run in the same
    minutes, so their ratio moves less than either figure when other work shares the machine."""
    baseline, baseline_bound = bare_round("baseline_post_rps", "/api/post", POST_LUA, seconds, connections, {})
    ratios: list[float] = []
    for run in range(1, repeat + 1):
        rps, p99_ms, bound = messages_rps(seconds, connections, run)
        report("messages_vs_baseline", rps / baseline, "ratio", baseline_bound or bound, target=0.25, p99_ms=p99_ms,
               p99_target_ms=20, run=run)
        floor, floor_bound = floor_rps(seconds, connections, run)
        report("floor_vs_baseline", floor / baseline, "ratio", baseline_bound or floor_bound, run=run)
        report("messages_vs_floor", rps / floor, "ratio", floor_bound or bound, run=run)
        if bound is None and floor_bound is None:
            ratios.append(rps / floor)
    if repeat > 1:
        counted = f"only {len(ratios)} of {repeat} pairs counted" if len(ratios) * 2 <= repeat else None
        report("messages_vs_floor_median", statistics.median(ratios) if ratios else 0.0, "ratio", counted,
               pairs=len(ratios), low=round(min(ratios, default=0), 3), high=round(max(ratios, default=0), 3))


def messages_rps(seconds: float, connections: int, run: int) -> tuple[float, float, str | None]:
    """Direct messages to 100 live tally agents through `aos serve`; their req/s, p99 in ms, and why the figure
    does not count (None when it does)."""
    tmp = Path(tempfile.mkdtemp(prefix="aos-bench-http-messages-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp, port)
    try:
        with httpx.Client(base_url=base, headers={"x-functions-key": KEY}, timeout=60) as client:
            for i in range(AGENTS):  # live: registered and warmed by one applied message each
                client.post("/api/agents", json={"type": "tally", "id": f"m{i}"}).raise_for_status()
                client.post(f"/api/agents/m{i}/messages", params={"wait": "30"},
                            json={"id": f"warm-m{i}", "type": "bench.warm"}).raise_for_status()
            before = totals(client)
            env = {"AOS_BENCH_RUN": "msg", "AOS_BENCH_AGENTS": str(AGENTS), "AOS_BENCH_KEY": KEY,
                   "AOS_BENCH_IDS": str(tmp / "ids")}
            summary, bound = wrk(base, MESSAGES_LUA, seconds, connections, env, [proc.pid])
            checked = exactly_once(client, before, read_ids(tmp, "accepted"), read_ids(tmp, "sent"))
        if checked is None and (summary["non_2xx"] or summary["socket_errors"]):
            checked = f"{summary['non_2xx']} non-2xx answers and {summary['socket_errors']} socket errors"
        rps = summary["accepted"] / summary["seconds"]
        report("messages_rps", rps, "req/s", bound or checked, connections=connections, agents=AGENTS,
               applied_exactly_once=checked is None, run=run, **summary)
        return rps, summary["p99_ms"], bound or checked
    finally:
        proc.terminate()
        proc.wait(60)


def floor_rps(seconds: float, connections: int, run: int = 1) -> tuple[float, str | None]:
    """The messages round's load against bench/durable_floor_app.py on the same host; its req/s, and why the
    figure does not count (None when it does)."""
    tmp = Path(tempfile.mkdtemp(prefix="aos-bench-http-floor-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(tmp, port, app="durable_floor_app:app", app_dir=ROOT / "bench")
    try:
        env = {"AOS_BENCH_RUN": "floor", "AOS_BENCH_AGENTS": str(AGENTS), "AOS_BENCH_KEY": KEY,
               "AOS_BENCH_IDS": str(tmp / "ids")}
        summary, bound = wrk(base, MESSAGES_LUA, seconds, connections, env, [proc.pid])
        # The entities apply the queued signals after the answers: wait until they stop (the drain is reported).
        ended, cpu, applied, last = time.perf_counter(), cpu_seconds([proc.pid]), -1, 0
        while time.perf_counter() - ended < 120:
            now = sum(int(json.loads(e["state"] or "0")) for e in entities(base, "counter"))
            if now == applied and now >= summary["accepted"]:
                break
            applied, last = now, time.perf_counter()
            time.sleep(0.2)  # polling the host's progress
        drain = {"drain_s": round(last - ended, 2), "drain_cpu_s": round(cpu_seconds([proc.pid]) - cpu, 2)}
        if not summary["accepted"] <= applied <= len(read_ids(tmp, "sent")):
            bound = bound or f"the counters applied {applied} messages; {summary['accepted']} were answered"
        rps = summary["accepted"] / summary["seconds"]
        report("floor_rps", rps, "req/s", bound, connections=connections, agents=AGENTS, applied=applied, **drain,
               run=run, **summary)
        return rps, bound
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="short rounds (a smoke run)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2], help="instance counts (default 1 2)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="messages round: AOS and the floor app alternately, this many times (default 1)")
    parser.add_argument("--rounds", nargs="+", choices=ROUNDS, default=list(ROUNDS),
                        help="which rounds to run (default all: health messages events)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench/http.py drives load with wrk, which is not installed (Debian/Ubuntu: apt-get install wrk)")
    seconds = 3.0 if args.small else 10.0
    if "health" in args.rounds:
        health(seconds, args.connections)
    if "messages" in args.rounds:
        messages(seconds, args.connections, max(1, args.repeat))
    for count in args.instances if "events" in args.rounds else []:
        events_per_s(count, seconds, args.connections)


if __name__ == "__main__":
    main()
