"""Cost per event against the size of the agent's context. Prints one JSON line per metric; not a test (run by hand
or with --small in CI).

  events_per_s_context_1kb   direct messages to one tally agent whose context holds ~1 KB, each committed to
                             SQLite (synchronous=FULL) on the kernel's full path: record, audit, context, result
  events_per_s_context_1mb   the same agent with ~1 MB in its context (10,000 entries it does not touch)
  context_rate_ratio         1 MB rate / 1 KB rate (target >= 0.5: an event costs what it changes)
  context_head_bytes_p50     the context head written per commit with the 1 MB context (the log of deltas)

Each round starts from a fresh data folder; the agent's context is filled and committed before timing. Rounds of
both sizes alternate and the medians are reported (the machine's other work slows both alike).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from services.storage import SqliteStateStore


def emit(metric: str, value: float, unit: str, **extra: Any) -> None:
    print(json.dumps({"metric": metric, "value": round(value, 3), "unit": unit, **extra}), flush=True)


async def rate(data: Path, *, entries: int, events: int) -> tuple[float, float]:
    """Events/s to one tally agent holding `entries` notes of ~100 bytes, and the median head size written."""
    store = SqliteStateStore(data / "state.db")
    aos = AgentOperatingSystem(AOSConfig(data_dir=data, dispatch={"durability": "commit"}), store=store)
    await aos.initialize()
    await aos.register_agent("tally", agent_id="t")
    await aos.send_message("t", Event(type="bench.warm", source="bench"))
    agent: Any = aos.dispatcher.live_agent("t")
    agent.state["notes"] = {f"note-{i:05d}": "n" * 90 for i in range(entries)}
    await agent.context.save_state()
    heads: list[int] = []
    started = time.perf_counter()
    for n in range(events):
        result = await aos.send_message("t", Event(type="bench.hit", source="bench", data={"n": n}))
        assert result.status == "completed", result
        if n % 50 == 0:
            doc = await store.get("context/t")
            heads.append(len(json.dumps(doc.value)) if doc else 0)
    elapsed = time.perf_counter() - started
    assert agent.state["total"] == events + 1 and len(agent.state["notes"]) == entries
    await aos.shutdown()
    return events / elapsed, statistics.median(heads)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="smoke mode: small N, for CI")
    args = parser.parse_args()
    events, rounds = (200, 1) if args.small else (2_000, 3)
    small: list[float] = []
    big: list[float] = []
    heads: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        await rate(Path(tmp) / "warm", entries=10, events=50)  # imports and first-use costs out of the way
        for n in range(rounds):  # alternate, so a noisy neighbour slows both sizes alike
            small.append((await rate(Path(tmp) / f"small{n}", entries=10, events=events))[0])
            per_s, head = await rate(Path(tmp) / f"big{n}", entries=10_000, events=events)
            big.append(per_s)
            heads.append(head)
    emit("events_per_s_context_1kb", statistics.median(small), "events/s", events=events, rounds=rounds)
    emit("events_per_s_context_1mb", statistics.median(big), "events/s", events=events, rounds=rounds)
    emit("context_rate_ratio", statistics.median(big) / statistics.median(small), "ratio", target=0.5)
    emit("context_head_bytes_p50", statistics.median(heads), "bytes", context_bytes=10_000 * 104)

if __name__ == "__main__":
    asyncio.run(main())
