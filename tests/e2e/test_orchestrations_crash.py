"""`kill -9` of the local host in the middle of orchestrations: after a restart each one completes, and no
activity whose completion was committed runs again (the activities count their executions in a StateStore)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.storage.sqlite import SqliteStateStore
from tests.support.host_process import ADMIN, HostProcess

APP = "tests.services.devhost.apps.orchestration_app:app"


@pytest.fixture
def host(tmp_path: Path) -> Iterator[HostProcess]:
    """`aos serve` of the orchestration test app, started; stopped after the test."""
    process = HostProcess(tmp_path, {"ORCH_TEST_STORE": str(tmp_path / "runs.db")}, {}, app=APP)
    process.start()
    try:
        yield process
    finally:
        process.stop()


async def _runs(tmp_path: Path, run: str) -> dict[int, int]:
    store = SqliteStateStore(tmp_path / "runs.db")
    try:
        return {int(d.key.rsplit("/", 1)[1]): d.value["count"] for d in await store.list(f"runs/{run}/")}
    finally:
        await store.close()


async def _finished(http: httpx.AsyncClient, instance_id: str, within: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        r = await http.get(f"/api/status/{instance_id}")
        if r.status_code == 200 and r.json()["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return r.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, r.text
        await asyncio.sleep(0.1)


def _committed_items(data: Path, instance_id: str) -> set[int]:
    """The activity items whose completion the host had committed (in the history or the inbox) at the kill."""
    with sqlite3.connect(data / "host.db") as conn:
        events = [json.loads(e) for (e,) in conn.execute(
            "SELECT event FROM orch_history WHERE instance_id = ? UNION ALL "
            "SELECT event FROM orch_inbox WHERE instance_id = ?", (instance_id, instance_id))]
    items = {e["EventId"]: json.loads(e["Input"])["i"] for e in events if e["EventType"] == 4}
    return {items[e["TaskScheduledId"]] for e in events if e["EventType"] == 5}


@pytest.mark.timeout(300)
async def test_kill_9_during_a_fan_out_of_50_activities(tmp_path: Path, host: HostProcess) -> None:
    async with httpx.AsyncClient(base_url=host.base, timeout=30) as http:
        # 32 activities run at once (the host's threads), so the last 18 count `sleep` after the first 32: the
        # kill must come within that window, which a loaded machine can take 0.3 s to reach.
        r = await http.post("/api/start/fan_out_fan_in/fan-1", json={"run": "f", "n": 50, "sleep": 2.0})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 60
        while len(await _runs(tmp_path, "f")) < 10:  # some activities have run, most have not
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        host.kill9()
        at_kill = await _runs(tmp_path, "f")
        committed = _committed_items(host.data, "fan-1")
        assert len(at_kill) < 50 and committed <= set(at_kill)
        host.start()
        status = await _finished(http, "fan-1")
    assert status["runtimeStatus"] == "Completed" and status["output"] == sum(range(50))
    runs = await _runs(tmp_path, "f")
    assert sorted(runs) == list(range(50))  # every activity ran
    assert all(runs[i] == 1 for i in committed)  # a committed completion is never run again
    # Only an activity that was running when the host died may have run a second time.
    again = {i for i, n in runs.items() if n > 1}
    assert again <= set(at_kill) - committed and all(n <= 2 for n in runs.values())
    print(json.dumps({"committed_at_kill": len(committed), "counted_at_kill": len(at_kill),
                      "ran_again": len(again)}))


@pytest.mark.timeout(300)
async def test_kill_9_during_a_durable_timer(tmp_path: Path, host: HostProcess) -> None:
    async with httpx.AsyncClient(base_url=host.base, timeout=30) as http:
        started = time.monotonic()
        r = await http.post("/api/start/timer_then_count/timer-1", json={"run": "t", "seconds": 5})
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 30
        while True:  # the timer is in the committed history
            status = (await http.get("/api/status/timer-1")).json()
            if any(e["EventType"] == 10 for e in status.get("historyEvents") or []):
                break
            assert time.monotonic() < deadline, status
            await asyncio.sleep(0.05)
        host.kill9()
        assert time.monotonic() - started < 5  # killed while the timer was still pending
        host.start()
        status = await _finished(http, "timer-1")
        assert time.monotonic() - started >= 5  # it fired when due, not at the restart
    assert status["runtimeStatus"] == "Completed" and status["output"] == 0
    assert await _runs(tmp_path, "t") == {0: 1}
    fired = [e for e in status["historyEvents"] if e["EventType"] == 11]
    assert len(fired) == 1


@pytest.mark.timeout(300)
async def test_three_instances_run_each_activity_once_and_survive_the_leaders_kill_9(tmp_path: Path) -> None:
    # Every instance takes in starts and events, but one at a time runs orchestrations (the `orchestrations`
    # lease); killing it hands them to another instance, which replays from the committed history.
    host = HostProcess(tmp_path, {"ORCH_TEST_STORE": str(tmp_path / "runs.db")}, {}, app=APP, instances=3)
    host.start()
    try:
        async with httpx.AsyncClient(base_url=host.base, timeout=30) as http:
            for n in range(3):  # through the front door: each start lands on another instance
                r = await http.post(f"/api/start/fan_out_fan_in/calm-{n}", json={"run": f"c{n}", "n": 10})
                assert r.status_code == 202, r.text
            for n in range(3):
                assert (await _finished(http, f"calm-{n}"))["runtimeStatus"] == "Completed"
                assert await _runs(tmp_path, f"c{n}") == {i: 1 for i in range(10)}  # never twice, never in parallel

            r = await http.post("/api/start/fan_out_fan_in/fan-k", json={"run": "k", "n": 30, "sleep": 0.3})
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 60
            while len(await _runs(tmp_path, "k")) < 5:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            status = (await http.get("/admin/status", headers=ADMIN)).json()
            leader = next(i for i in status["instances"] if "orchestrations" in i["singletons"])
            os.kill(leader["pid"], signal.SIGKILL)
            committed = _committed_items(host.data, "fan-k")
            done = await _finished(http, "fan-k", within=120)
        assert done["runtimeStatus"] == "Completed" and done["output"] == sum(range(30))
        runs = await _runs(tmp_path, "k")
        assert sorted(runs) == list(range(30)) and all(runs[i] == 1 for i in committed)
        assert all(n <= 2 for n in runs.values())  # only what the dead leader was running ran again
    finally:
        host.stop()
