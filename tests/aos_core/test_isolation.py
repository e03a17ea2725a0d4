"""A handler that hangs is cancelled and its mailbox released; one that blocks the loop is named and reported."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agents import PerpetualAgent
from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.events import Event
from aos_core.telemetry import LOOP_BLOCKED, NoTelemetry
from services.storage import SqliteStateStore


class Moody(PerpetualAgent):
    agent_type = "moody"

    async def handle_event(self, event: Event) -> Any:
        if event.type == "hang":
            await asyncio.Event().wait()  # never set: awaits forever
        if event.type == "block":
            time.sleep(1.0)  # noqa: ASYNC251 - the point: a handler that holds the loop
        self.state["ok"] = self.state.get("ok", 0) + 1
        return self.state["ok"]


class CountingTelemetry(NoTelemetry):
    def __init__(self) -> None:
        self.counts: dict[str, list[dict[str, Any]]] = {}

    def increment(self, name: str, n: int = 1, **attributes: Any) -> None:
        self.counts.setdefault(name, []).append(attributes)


@pytest.fixture
async def aos(tmp_path: Path) -> AsyncIterator[AgentOperatingSystem]:
    config = AOSConfig(data_dir=tmp_path, dispatch={"handler_timeout": 2.0, "max_attempts": 1,
                                                    "block_threshold": 0.2})
    kernel = AgentOperatingSystem(config, store=SqliteStateStore(tmp_path / "state.db"),
                                  telemetry=CountingTelemetry())
    await kernel.initialize()
    kernel.register_type(Moody)
    yield kernel
    await kernel.shutdown()


async def test_a_hanging_handler_is_cancelled_and_its_mailbox_released(aos: AgentOperatingSystem) -> None:
    await aos.register_agent("moody", agent_id="m1")
    started = time.monotonic()
    hung = await aos.send_message("m1", Event(id="hang-1", type="hang"))
    assert hung.status == "failed" and "did not finish within 2s" in (hung.error or "")
    assert time.monotonic() - started < 10
    after = await asyncio.wait_for(aos.send_message("m1", Event(type="fine")), 5)
    assert after.status == "completed" and after.result == 1
    assert (await aos.records.get("hang-1")).status == "failed"  # type: ignore[union-attr]


async def test_a_handler_that_blocks_the_loop_is_reported_with_its_agent_and_event(
        aos: AgentOperatingSystem, caplog: pytest.LogCaptureFixture) -> None:
    await aos.register_agent("moody", agent_id="m2")
    await aos.register_agent("tally", agent_id="ops", subscribe=["aos.alert.*"])
    caplog.set_level(logging.ERROR, logger="aos.kernel")
    result = await aos.send_message("m2", Event(id="block-1", type="block"))
    assert result.status == "completed"  # blocking is reported, not punished: it did finish
    for _ in range(100):  # the report lands once the loop turns again
        alerts = (await aos.read_context("ops") or {}).get("state", {}).get("by_type", {})
        if alerts:
            break
        await asyncio.sleep(0.05)
    assert alerts == {"aos.alert.loop_blocked": 1}
    assert any("blocked" in r.getMessage() and "agent m2" in r.getMessage() and "block-1" in r.getMessage()
               for r in caplog.records)
    assert aos.audit is not None
    entries = await aos.audit.entries(action="agent.blocked_loop")
    assert [(e.subject, e.payload["event_id"]) for e in entries] == [("agent/m2", "block-1")]  # type: ignore[index]
    assert entries[0].payload["seconds"] >= 0.9  # type: ignore[index]
    telemetry = aos.telemetry
    assert isinstance(telemetry, CountingTelemetry) and telemetry.counts[LOOP_BLOCKED] == [{"agent": "m2"}]


@pytest.mark.parametrize(("state", "cpu_share", "starved"), [
    ("R", 0.1, True),  # runnable, yet barely ran: the machine was busy, no agent is blamed
    ("R", 0.9, False),  # a handler computing on the loop
    ("S", 0.0, False),  # a handler sleeping (time.sleep) or
    ("D", 0.0, False),  # waiting on I/O on the loop
    (None, 0.1, False),  # no /proc: blame what is on the stack
])
def test_the_watchdog_tells_a_starved_loop_from_a_blocking_handler(
        monkeypatch: pytest.MonkeyPatch, state: str | None, cpu_share: float, starved: bool) -> None:
    from aos_core import watchdog

    dog = watchdog.LoopWatchdog(asyncio.new_event_loop(), 1.0, lambda stall: None)
    monkeypatch.setattr(watchdog, "_scheduler_state", lambda native_id: state)
    monkeypatch.setattr(dog, "_cpu_seconds", lambda: 10.0 + 2.0 * cpu_share)
    assert dog._starved((100.0, 10.0), 102.0) is starved
    dog.loop.close()


def test_the_loop_threads_scheduler_state_and_cpu_time_are_readable_here() -> None:
    # What the checks above rely on, read for this thread on this machine (Linux, as on Azure Functions).
    import threading

    from aos_core import watchdog

    assert watchdog._scheduler_state(threading.get_native_id()) == "R"  # it is running this very line
    dog = watchdog.LoopWatchdog(asyncio.new_event_loop(), 1.0, lambda stall: None)
    dog._loop_thread = threading.get_ident()
    first = dog._cpu_seconds()
    sum(i * i for i in range(200_000))
    assert first is not None and dog._cpu_seconds() > first  # type: ignore[operator]
    dog.loop.close()
