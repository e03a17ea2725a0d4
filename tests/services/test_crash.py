"""kill -9 in the middle of a stream: every acknowledged event is there exactly once, files are consistent."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

from services.messaging import SqliteEventBus
from services.storage import SqliteStateStore

CHILD = r"""
import asyncio, sys
from aos_core.events import Event
from services.messaging import SqliteEventBus
from services.storage import SqliteStateStore

async def main(folder):
    store, bus = SqliteStateStore(folder + "/state.db"), SqliteEventBus(folder + "/bus.db")
    await bus.create_subscription("orders", "audit")
    async def write(n):
        event = Event(id=f"e{n}", type="order.created", data={"n": n, "pad": "x" * 200})
        await bus.publish("orders", event)
        await store.put(f"orders/e{n}", {"n": n}, if_none_match=True)
        print(f"ack e{n}", flush=True)
    n = 0
    while True:  # eight in flight at a time, so commits are grouped
        await asyncio.gather(*(write(n + k) for k in range(8)))
        n += 8

asyncio.run(main(sys.argv[1]))
"""


def test_sigkill_mid_stream_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert child.stdout is not None
    acked: list[str] = []
    for line in child.stdout:
        acked.append(line.split()[1])
        if len(acked) >= 400:
            break
    child.send_signal(signal.SIGKILL)
    acked.extend(line.split()[1] for line in child.stdout)  # whatever was acknowledged before the kill
    child.stdout.close()
    child.wait(10)
    assert child.returncode == -signal.SIGKILL

    for name in ("state.db", "bus.db"):
        with sqlite3.connect(tmp_path / name) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    stored, delivered = asyncio.run(read_back(tmp_path))
    assert set(acked) <= stored
    assert set(acked) <= set(delivered)
    assert max(delivered.values()) == 1, "a message was stored twice"
    assert len(acked) >= 400


async def read_back(tmp_path: Path) -> tuple[set[str], Counter[str]]:
    store = SqliteStateStore(tmp_path / "state.db")
    stored = {doc.key.removeprefix("orders/") for doc in await store.list("orders/", limit=100_000)}
    await store.close()

    bus = SqliteEventBus(tmp_path / "bus.db")
    delivered: Counter[str] = Counter()
    while batch := await bus.receive("orders", "audit", max_messages=500):
        for message in batch:
            delivered[message.event.id] += 1
            await bus.complete(message)
    await bus.close()
    return stored, delivered
