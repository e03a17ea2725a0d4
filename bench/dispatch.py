"""Dispatch benchmarks. Prints one JSON line per metric; not a test (run by hand or with --small in CI).

  events_per_s_memory     routed in-process dispatch to 1,000 tally agents, state kept in memory (write-behind)
  autogen_events_per_s    autogen-core's SingleThreadedAgentRuntime publishing the same stream, measured in the
                          same run (installed into a throwaway virtual environment this bench creates; skipped
                          with --small or --no-autogen)
  events_per_s_committed  the full accept path: each batch of 100 events submitted at once (record, audit entry,
                          `event.deliver` policy), each agent's state committed before the event is acknowledged,
                          state and audit in SQLite with synchronous=FULL
  (the dormant rounds below use SQLite as the app does by default, synchronous=NORMAL)
  dormant_bytes_per_agent RSS growth per registered-but-dormant agent (100,000 of them, registered concurrently)
  activation_ms_p50/p99   time to bring a dormant agent back live from SQLite (evicting another one)
  first_event_ms_p50/p99  time of a dormant agent's first event: activation, handling and commit

The committed and dormant rounds run with the garbage collector set as a hosting process sets it
(`aos_core/gc_tuning.py`, `dispatch.gc_threshold`); the in-memory round, compared with autogen-core, keeps
Python's defaults, as autogen-core's process does.

Throughput lines also give events per CPU-second of this process (`per_cpu_s`), which moves less than
wall-clock rates on a machine shared with other work. Targets on a 2-core machine: >= 20,000 events/s committed,
in memory >= 2 x autogen-core, < 300 bytes per dormant agent, activation p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents.tally import TallyAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import AgentId, Event
from aos_core.gc_tuning import tune_for_server
from services.governance.audit import SqliteAuditLog
from services.storage import InMemoryStateStore, SqliteStateStore

BATCH = 100  # events per submit, as one POST /api/events carries them
# A real rule that every delivery is checked against (and passes): the policy costs what it costs in production.
POLICY = {"id": "no-bench-refunds", "kind": "event_types", "agent": "*", "deny": ["refund.*"]}
# The throughput rounds (also what bench/instructions.py counts): state in memory, or the full accept path.
ROUNDS: dict[str, dict[str, Any]] = {"memory": {"durability": "memory", "sqlite": False, "governed": False},
                                     "committed": {"durability": "commit", "sqlite": True, "governed": True}}


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def kernel(data: Path, *, durability: str, sqlite: bool, max_live: int = 10_000,
                 governed: bool = False) -> AgentOperatingSystem:
    # The governed round is the full accept path, durable to power loss; the others use the app's defaults.
    synchronous = "FULL" if governed else "NORMAL"
    store = SqliteStateStore(data / "state.db", synchronous=synchronous) if sqlite else InMemoryStateStore()
    audit = SqliteAuditLog(data / "audit.db", synchronous="FULL") if governed else None
    # Nothing from the config folder (its sample agents, schedules and policies): the rounds measure the kernel
    # alone, whichever folder they run from, and run another checkout's kernel the same way (instructions.py --code).
    config = AOSConfig(data_dir=data, dispatch={"durability": durability, "max_live_agents": max_live},
                       agents={"instances": []}, schedules=[],
                       governance={"policies": [POLICY] if governed else [],
                                   "audit_backend": "sqlite" if governed else "none"})
    aos = AgentOperatingSystem(config, store=store, audit=audit)
    await aos.initialize()
    if "tally" not in aos.registry.types:  # a kernel from before agents.builtin found its types in entry points
        aos.register_type(TallyAgent, "tally")
    aos.subscribe("bench.*", agent_type="tally")
    return aos


async def throughput(data: Path, *, durability: str, sqlite: bool, governed: bool, agents: int,
                     events: int, via: str = "submit_many") -> tuple[float, float]:
    """Events/s and events per CPU-second: `agents` events in flight at a time, in batches of BATCH through
    `submit_many` (as POST /api/events carries them), or each alone through `process_event` (`via`)."""
    aos = await kernel(data, durability=durability, sqlite=sqlite, governed=governed)
    send = _sender(aos, via)
    await send([Event(type="bench.hit", subject=f"a{i}") for i in range(agents)])  # warm: every agent live
    stream = [Event(type=f"bench.k{i % 5}", subject=f"a{i % agents}") for i in range(events)]
    started, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, events, agents):
        await send(stream[offset:offset + agents])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await aos.shutdown()
    return events / elapsed, events / cpu


def _sender(aos: AgentOperatingSystem, via: str) -> Callable[[list[Event]], Awaitable[None]]:
    """A wave of events submitted at once, each event checked `completed` for its one target."""

    async def submit_many(wave: list[Event]) -> None:
        records = await asyncio.gather(*(aos.submit_many(wave[o:o + BATCH]) for o in range(0, len(wave), BATCH)))
        assert all(r.status == "completed" for batch in records for r in batch)

    async def process_event(wave: list[Event]) -> None:
        results = await asyncio.gather(*(aos.process_event(event) for event in wave))
        assert all(r[0].status == "completed" for r in results)

    return {"submit_many": submit_many, "process_event": process_event}[via]


def autogen_rate(agents: int, events: int, folder: Path) -> dict[str, float]:
    """autogen-core's publish rate, from a virtual environment made here and thrown away with `folder`."""
    venv = folder / "autogen-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "autogen-core"], check=True)
    script = Path(__file__).with_name("autogen_baseline.py")
    out = subprocess.run([str(python), str(script), str(agents), str(events)], check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": ""})
    return json.loads(out.stdout.strip().splitlines()[-1])


async def dormant(data: Path, *, count: int, samples: int) -> tuple[float, list[float], list[float]]:
    aos = await kernel(data, durability="commit", sqlite=True, max_live=100)
    gc.collect()
    before = rss_bytes()
    chunk = 1000
    for offset in range(0, count, chunk):
        await asyncio.gather(*(aos.register_agent("tally", agent_id=f"d{i}")
                               for i in range(offset, min(count, offset + chunk))))
    gc.collect()
    per_agent = (rss_bytes() - before) / count
    activation, first_event = [], []
    keys = random.Random(7).sample(range(count), 2 * samples)
    for key in keys[:samples]:  # bring the agent live from SQLite (evicting another, which is saved)
        started = time.perf_counter()
        await aos.dispatcher.ensure_live(AgentId("tally", f"d{key}"))
        activation.append((time.perf_counter() - started) * 1000)
    for key in keys[samples:]:  # the whole first event: activation, handling, commit
        started = time.perf_counter()
        result = await aos.process_event(Event(type="bench.wake", subject=f"d{key}"))
        first_event.append((time.perf_counter() - started) * 1000)
        assert result[0].status == "completed"
    await aos.shutdown()
    return per_agent, activation, first_event


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="smoke mode: small N, for CI")
    parser.add_argument("--no-autogen", action="store_true", help="skip the autogen-core yardstick")
    parser.add_argument("--events", type=int, help="events per throughput round (default 200,000 in memory, "
                                                   "100,000 committed)")
    args = parser.parse_args()
    agents, mem_events, db_events = (100, 2_000, 1_000) if args.small else (1_000, 200_000, 100_000)
    if args.events:
        mem_events = db_events = args.events
    dormant_count, samples = (2_000, 200) if args.small else (100_000, 2_000)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)

        def folder() -> Path:
            return Path(tempfile.mkdtemp(dir=root))

        rate, per_cpu = await throughput(folder(), agents=agents, events=mem_events, **ROUNDS["memory"])
        emit("events_per_s_memory", rate, "events/s", per_cpu_s=round(per_cpu), agents=agents, events=mem_events,
             load=load)
        if not (args.small or args.no_autogen):
            baseline = autogen_rate(agents, mem_events, folder())
            emit("autogen_events_per_s", baseline["events_per_s"], "events/s",
                 per_cpu_s=round(baseline["events_per_cpu_s"]), agents=agents, events=mem_events)
            emit("memory_vs_autogen", rate / baseline["events_per_s"], "ratio",
                 per_cpu=round(per_cpu / baseline["events_per_cpu_s"], 2))
        gc_threshold = AOSConfig().dispatch.gc_threshold
        tune_for_server(gc_threshold)  # from here on, as in a host
        rate, per_cpu = await throughput(folder(), agents=agents, events=db_events, **ROUNDS["committed"])
        emit("events_per_s_committed", rate, "events/s", per_cpu_s=round(per_cpu), agents=agents, events=db_events,
             synchronous="FULL", gc_threshold=gc_threshold, load=load)
        per_agent, activation, first_event = await dormant(folder(), count=dormant_count, samples=samples)
        emit("dormant_bytes_per_agent", per_agent, "bytes", agents=dormant_count)
        for name, values in (("activation", activation), ("first_event", first_event)):
            values.sort()
            emit(f"{name}_ms_p50", statistics.median(values), "ms", samples=samples)
            emit(f"{name}_ms_p99", values[int(len(values) * 0.99) - 1], "ms", samples=samples)


if __name__ == "__main__":
    asyncio.run(main())
