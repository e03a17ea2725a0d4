"""Dispatch benchmarks. Prints one JSON line per metric; not a test (run by hand or with --small in CI).

  events_per_s_memory     routed in-process dispatch to 1,000 tally agents, state kept in memory (write-behind)
  events_per_s_committed  the same with each agent's state committed to SQLite before the event is acknowledged
  dormant_bytes_per_agent RSS growth per registered-but-dormant agent (100,000 of them)
  activation_ms_p50/p99   time to bring a dormant agent back live from SQLite (evicting another one)
  first_event_ms_p50/p99  time of a dormant agent's first event: activation, handling and commit

Targets on a 2-core machine: >= 20,000 events/s in memory, >= 5,000 committed, < 300 bytes per dormant
agent, activation p99 < 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import AgentId, Event
from services.storage import InMemoryStateStore, SqliteStateStore


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def kernel(data: Path, *, durability: str, sqlite: bool, max_live: int = 10_000) -> AgentOperatingSystem:
    store = SqliteStateStore(data / "state.db") if sqlite else InMemoryStateStore()
    config = AOSConfig(data_dir=data, dispatch={"durability": durability, "max_live_agents": max_live})
    aos = AgentOperatingSystem(config, store=store)
    await aos.initialize()
    aos.subscribe("bench.*", agent_type="tally")
    return aos


async def throughput(data: Path, *, durability: str, sqlite: bool, agents: int, events: int) -> float:
    aos = await kernel(data, durability=durability, sqlite=sqlite)
    batch = [Event(type="bench.hit", subject=f"a{i}") for i in range(agents)]
    await asyncio.gather(*(aos.process_event(e) for e in batch))  # warm: every agent live
    stream = [Event(type=f"bench.k{i % 5}", subject=f"a{i % agents}") for i in range(events)]
    started = time.perf_counter()
    for offset in range(0, events, agents):
        results = await asyncio.gather(*(aos.process_event(e) for e in stream[offset:offset + agents]))
        assert all(r[0].status == "completed" for r in results)
    elapsed = time.perf_counter() - started
    await aos.shutdown()
    return events / elapsed


async def dormant(data: Path, *, count: int, samples: int) -> tuple[float, list[float]]:
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
    args = parser.parse_args()
    agents, mem_events, db_events = (100, 2_000, 1_000) if args.small else (1_000, 200_000, 50_000)
    dormant_count, samples = (2_000, 200) if args.small else (100_000, 2_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rate = await throughput(root / "m", durability="memory", sqlite=False, agents=agents, events=mem_events)
        emit("events_per_s_memory", rate, "events/s", agents=agents, events=mem_events)
        rate = await throughput(root / "c", durability="commit", sqlite=True, agents=agents, events=db_events)
        emit("events_per_s_committed", rate, "events/s", agents=agents, events=db_events)
        per_agent, activation, first_event = await dormant(root / "d", count=dormant_count, samples=samples)
        emit("dormant_bytes_per_agent", per_agent, "bytes", agents=dormant_count)
        for name, values in (("activation", activation), ("first_event", first_event)):
            values.sort()
            emit(f"{name}_ms_p50", statistics.median(values), "ms", samples=samples)
            emit(f"{name}_ms_p99", values[int(len(values) * 0.99) - 1], "ms", samples=samples)


if __name__ == "__main__":
    asyncio.run(main())
