"""What an agent sends is committed with the state that sent it (the context's outbox) and handed on after: a
crash right after the commit, an outage of the receiver's storage or a bus that refuses a publish loses nothing,
and a message handed on twice is applied once (its id is derived from the event that sent it)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.agent_context import AgentContext
from aos_core.clock import SystemClock
from aos_core.errors import StorageUnavailableError
from aos_core.events import Event
from services.messaging.sqlite_bus import SqliteEventBus
from services.storage import SqliteStateStore

ROOT = Path(__file__).resolve().parents[2]
TYPES = {"announcer": "tests.support.agents:Announcer",  # publishes `<type>.seen` for each event it counts
         "relay": "tests.support.agents:Relay"}  # keeps no state; publishes `<type>.relayed` for each event


def _config(data: Path) -> AOSConfig:
    return AOSConfig(data_dir=data, agents={"types": TYPES})


async def _kernel(data: Path, store: SqliteStateStore | None = None, **options: Any) -> AgentOperatingSystem:
    aos = AgentOperatingSystem(_config(data), store=store or SqliteStateStore(data / "state.db"), **options)
    await aos.initialize()
    return aos


async def _stop(aos: AgentOperatingSystem) -> None:
    await aos.shutdown()
    await aos.store.close()  # type: ignore[attr-defined]  # a store given to the kernel is the giver's to close


async def _register(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("announcer", agent_id="a1", subscribe=["ping"])
    await aos.register_agent("tally", agent_id="t1", subscribe=["ping.seen"])


async def _total(aos: AgentOperatingSystem) -> int:
    return int(((await aos.read_context("t1")) or {}).get("state", {}).get("total", 0))


async def _outbox(aos: AgentOperatingSystem) -> list[str]:
    """The events whose messages the announcer's stored outbox holds."""
    head = (await aos.store.get("context/a1")).value  # type: ignore[union-attr]
    return [entry["event"]["data"]["original"] for entry in head.get("outbox", [])]


class CrashAfterCommit(SqliteStateStore):
    """SQLite whose process is killed (SIGKILL) as soon as the announcer's commit with a message in it lands:
    after the commit, before anything the announcer sent went out."""

    async def put(self, key: str, value: Any, **options: Any) -> str:
        etag = await super().put(key, value, **options)
        if key == "context/a1" and value.get("outbox"):
            os.kill(os.getpid(), signal.SIGKILL)
        return etag


def crash_after_commit(data: str) -> None:
    """Run in a child process: send `ping` e1, whose handling dies right after the announcer's commit."""
    async def run() -> None:
        aos = await _kernel(Path(data), CrashAfterCommit(Path(data) / "state.db"))
        await aos.process_event(Event(id="e1", type="ping"))

    asyncio.run(run())
    raise AssertionError("the process should have been killed after the commit")


async def test_a_message_committed_before_a_kill_9_is_handed_on_when_the_sender_wakes(tmp_path: Path) -> None:
    aos = await _kernel(tmp_path)
    await _register(aos)
    await _stop(aos)
    code = "import asyncio, sys; from tests.aos_core.test_outbox import crash_after_commit as run; run(sys.argv[1])"
    child = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                                    capture_output=True, text=True, timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr

    aos = await _kernel(tmp_path)
    try:
        assert (await aos.store.get("context/a1")).value["outbox"]  # type: ignore[union-attr]
        assert await _total(aos) == 0  # the message never went out
        for _ in range(2):  # the client resends what was not acknowledged, twice
            results = await aos.process_event(Event(id="e1", type="ping"))
            assert [r.status for r in results] == ["completed"]  # the announcer's commit had applied it
            await aos.run_until_idle()
        assert await _total(aos) == 1  # handed on when the announcer woke, and applied once
        assert (await aos.read_context("a1"))["state"]["seen"] == 1  # type: ignore[index]
        await aos.process_event(Event(id="e2", type="ping"))
        await aos.run_until_idle()
        assert await _total(aos) == 2
        assert await _outbox(aos) == ["e2"]  # e1's message, handed on, left the outbox with the next commit
    finally:
        await _stop(aos)


class OutageStore(SqliteStateStore):
    """SQLite refusing `outage` writes of t1's context as a full disk would."""

    outage = 0

    async def put(self, key: str, value: Any, **options: Any) -> str:
        if self.outage and key == "context/t1":
            self.outage -= 1
            raise StorageUnavailableError("storage unavailable: database or disk is full (simulated)")
        return await super().put(key, value, **options)


async def test_a_message_whose_receiver_meets_an_outage_is_applied_once_storage_answers(tmp_path: Path) -> None:
    store = OutageStore(tmp_path / "state.db")
    aos = await _kernel(tmp_path, store)
    try:
        await _register(aos)
        store.outage = 2  # the message's first two deliveries: once, it stayed pending and nobody sent it again
        await aos.process_event(Event(id="e1", type="ping"))
        await asyncio.wait_for(aos.run_until_idle(), timeout=30)  # tried again after 0.5 s, then 1 s
        assert store.outage == 0
        assert await _total(aos) == 1
        await aos.process_event(Event(id="e2", type="ping"))
        await aos.run_until_idle()
        assert await _total(aos) == 2
        assert await _outbox(aos) == ["e2"]
    finally:
        await _stop(aos)


async def test_a_stateless_agents_message_whose_receiver_meets_an_outage_is_applied_once_storage_answers(
        tmp_path: Path) -> None:
    # A BaseAgent keeps no context, so no outbox: its message is submitted at once, and tried again while the
    # receiver's storage is out, as a perpetual agent's is (before, it stayed pending and nobody sent it again).
    store = OutageStore(tmp_path / "state.db")
    aos = await _kernel(tmp_path, store)
    try:
        await aos.register_agent("relay", agent_id="r1", subscribe=["ping"])
        await aos.register_agent("tally", agent_id="t1", subscribe=["ping.relayed"])
        store.outage = 2
        await aos.process_event(Event(id="e1", type="ping"))
        await asyncio.wait_for(aos.run_until_idle(), timeout=30)  # tried again after 0.5 s, then 1 s
        assert store.outage == 0
        assert await _total(aos) == 1
        await aos.process_event(Event(id="e1", type="ping"))  # a resend: applied once, relayed once
        await aos.process_event(Event(id="e2", type="ping"))
        await asyncio.wait_for(aos.run_until_idle(), timeout=30)
        assert await _total(aos) == 2
    finally:
        await _stop(aos)


class RefusingBus(SqliteEventBus):
    """The bus of a hosted kernel, refusing `refuse` publishes as an unreachable Service Bus would."""

    refuse = 0
    published: list[Event]

    async def publish(self, topic: str, event: Event, **options: Any) -> None:
        if self.refuse:
            self.refuse -= 1
            raise ConnectionError("the bus cannot be reached (simulated)")
        self.published.append(event)
        await super().publish(topic, event, **options)


async def test_a_publish_the_bus_refused_is_retried_with_the_next_commit_and_keeps_its_id(tmp_path: Path) -> None:
    bus = RefusingBus(tmp_path / "bus.db")
    bus.published = []
    aos = await _kernel(tmp_path, bus=bus, hosted=True)
    try:
        await _register(aos)
        bus.refuse = 1
        [first] = await aos.process_event(Event(id="e1", type="ping"))
        assert first.status == "completed" and "outbox_error" in first.extra  # committed, not yet sent
        assert bus.published == [] and await _outbox(aos) == ["e1"]
        await aos.process_event(Event(id="e2", type="ping"))
        assert [e.data["original"] for e in bus.published] == ["e1", "e2"]  # type: ignore[index]
        assert await _outbox(aos) == ["e1", "e2"]  # e2's commit kept e1's message, unsent until after it
        for event in bus.published:  # what the topic trigger does with each message
            await aos.submit(event)
        assert await _total(aos) == 2
    finally:
        await _stop(aos)
    aos = await _kernel(tmp_path, bus=bus, hosted=True)  # a restart: the announcer wakes with both entries kept
    try:
        await aos.process_event(Event(id="e3", type="ping"))
        # e1's and e2's messages were not published again: their records say the bus delivered them already
        assert [e.data["original"] for e in bus.published] == ["e1", "e2", "e3"]  # type: ignore[index]
    finally:
        await _stop(aos)
        await bus.close()


def test_the_outbox_entries_name_each_message_its_target_and_each_workflow() -> None:
    ctx = AgentContext("a1", Event(id="e1", type="ping"), SystemClock())
    sent = ctx.send("t1", "note", {"n": 1})
    published = ctx.publish("ping.seen")
    workflow = ctx.start_workflow("review", "review", [])
    entries = ctx.outgoing()
    assert [e["id"] for e in entries] == [sent.id, published.id, workflow]
    assert entries[0]["to_agent"] == "t1" and entries[1]["to_agent"] is None
    assert Event.model_validate(entries[0]["event"]) == sent
    assert entries[2]["workflow"]["name"] == "review"
