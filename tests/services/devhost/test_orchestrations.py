"""Orchestrations on the local host, driven through the real azure-functions-durable client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.devhost.index import index_functions
from services.devhost.server import DevHost
from services.storage.sqlite import SqliteStateStore
from tests.services.devhost.conftest import ADMIN, ServerThread, sample_settings


class Orchestrations:
    def __init__(self, host: DevHost, store: Path) -> None:
        self.host, self.store, self.base = host, store, host.settings.base_url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base, timeout=30)

    async def start(self, http: httpx.AsyncClient, name: str, body: Any, instance_id: str = "") -> str:
        r = await http.post(f"/api/start/{name}/{instance_id}".rstrip("/"), json=body)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    async def finished(self, http: httpx.AsyncClient, instance_id: str, within: float = 30) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            status = (await http.get(f"/api/status/{instance_id}")).json()
            if status.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
                return status  # type: ignore[no-any-return]
            if loop.time() > deadline:
                raise AssertionError(f"{instance_id} did not finish: {status}")
            await asyncio.sleep(0.05)

    async def runs(self, prefix: str) -> dict[str, int]:
        store = SqliteStateStore(self.store)
        try:
            return {d.key.removeprefix("runs/"): d.value["count"] for d in await store.list(f"runs/{prefix}")}
        finally:
            await store.close()


@pytest.fixture
def orchestrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Orchestrations]:
    from tests.services.devhost.apps.orchestration_app import app

    store = tmp_path / "runs.db"
    monkeypatch.setenv("ORCH_TEST_STORE", str(store))
    host = DevHost(index_functions(app), sample_settings(tmp_path))
    with ServerThread(host.app, host.settings.port, host.settings.host):
        yield Orchestrations(host, store)


async def test_fan_out_fan_in_runs_each_activity_once(orchestrations: Orchestrations) -> None:
    async with orchestrations.client() as http:
        instance_id = await orchestrations.start(http, "fan_out_fan_in", {"run": "f", "n": 20})
        status = await orchestrations.finished(http, instance_id)
        assert status["runtimeStatus"] == "Completed" and status["output"] == sum(range(20))
        assert await orchestrations.runs("f/") == {f"f/{i}": 1 for i in range(20)}
        types = [e["EventType"] for e in status["historyEvents"]]
        assert types.count(4) == 20 and types.count(5) == 20  # TaskScheduled, TaskCompleted
        assert types[-1] == 1  # ExecutionCompleted


async def test_an_orchestrator_from_the_docs_uses_every_kind_of_task(orchestrations: Orchestrations) -> None:
    async with orchestrations.client() as http:
        instance_id = await orchestrations.start(http, "everything", {"run": "e"}, "everything-1")
        assert instance_id == "everything-1"

        async def stage() -> Any:
            return (await http.get(f"/api/status/{instance_id}")).json().get("customStatus")

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while await stage() != {"stage": "waiting for approval"}:
            assert loop.time() < deadline, await stage()
            await asyncio.sleep(0.05)
        r = await http.post(f"/api/raise/{instance_id}/approval", json={"by": "cfo"})
        assert r.status_code == 202
        status = await orchestrations.finished(http, instance_id)
        assert status["runtimeStatus"] == "Completed", status
        assert status["customStatus"] == {"stage": "done"}
        out = status["output"]
        assert out["doubled"] == [2, 4, 6] and out["approval"] == {"by": "cfo"} and out["total"] == 12
        assert out["child"] == 10 and out["retried"] == "succeeded on attempt 3"
        assert out["gave_up"] == "this activity always fails"
        assert await orchestrations.runs("e/") == {"e/flaky": 3, "e/always_fails": 2}
        counter = await http.get("/runtime/webhooks/durabletask/entities/Counter/e-signals", headers=ADMIN)
        assert counter.status_code == 200 and counter.json() == 1  # the signal reached its entity
        # The sub-orchestration is an instance of its own, completed, named by its parent.
        listed = {s["instanceId"]: s for s in (await http.get("/api/instances")).json()}
        children = [s for i, s in listed.items() if i.startswith("everything-1:")]
        assert [c["name"] for c in children] == ["child"] and children[0]["runtimeStatus"] == "Completed"


async def test_external_event_or_deadline(orchestrations: Orchestrations) -> None:
    async with orchestrations.client() as http:
        answered = await orchestrations.start(http, "deadline", 30)
        await http.post(f"/api/raise/{answered}/reply", json="yes")
        late = await orchestrations.start(http, "deadline", 0.5)
        assert (await orchestrations.finished(http, answered))["output"] == {"reply": "yes"}
        assert (await orchestrations.finished(http, late))["output"] == {"reply": None, "timed_out": True}
        # Raising an event on a finished instance is 410 Gone to the client, and on an unknown one 404.
        r = await http.post(f"/api/raise/{late}/reply", json="too late")
        assert r.status_code == 409 and "gone" in r.json()["error"]
        r = await http.post("/api/raise/nobody/reply", json="x")
        assert "No instance" in r.json()["error"]


async def test_continue_as_new_failure_terminate_and_purge(orchestrations: Orchestrations) -> None:
    async with orchestrations.client() as http:
        looping = await orchestrations.start(http, "looping", 0)
        status = await orchestrations.finished(http, looping)
        assert status["runtimeStatus"] == "Completed" and status["output"] == 3 and status["input"] == 3

        broken = await orchestrations.start(http, "broken", None)
        status = await orchestrations.finished(http, broken)
        assert status["runtimeStatus"] == "Failed" and "the orchestrator gives up" in status["output"]

        waiting = await orchestrations.start(http, "deadline", 300)
        assert (await http.delete(f"/api/purge/{waiting}")).status_code == 409  # still running: kept
        await http.post(f"/api/terminate/{waiting}?reason=no%20longer%20needed")
        status = await orchestrations.finished(http, waiting)
        assert status["runtimeStatus"] == "Terminated" and status["output"] == "no longer needed"
        assert (await http.delete(f"/api/purge/{waiting}")).json() == {"deleted": 1}
        assert (await http.get(f"/api/status/{waiting}")).status_code == 404
        assert (await http.delete(f"/api/purge/{waiting}")).json() == {"deleted": 0}


async def test_start_is_refused_for_unknown_orchestrators_and_running_ids(orchestrations: Orchestrations) -> None:
    async with orchestrations.client() as http:
        r = await http.post("/api/start/nothing_like_it", json=None)
        assert r.status_code == 400 and "no orchestrator function named 'nothing_like_it'" in r.json()["error"]
        await orchestrations.start(http, "deadline", 300, "same-id")
        r = await http.post("/api/start/deadline/same-id", json=1)
        # refused while that instance is live, whether its first episode has run yet (Running) or not (Pending)
        assert r.status_code == 400 and re.search(r"exists and is (Pending|Running)", r.json()["error"])
        listed = (await http.get("/api/instances")).json()
        assert [s["instanceId"] for s in listed] == ["same-id"]
        status = (await http.get("/admin/status", headers=ADMIN)).json()
        assert [(o["instanceId"], o["runtimeStatus"]) for o in status["orchestrations"]] == [("same-id", "Running")]


async def test_bad_webhook_input_is_a_4xx_problem_and_changes_nothing(orchestrations: Orchestrations) -> None:
    base = "/runtime/webhooks/durabletask/"
    async with httpx.AsyncClient(base_url=orchestrations.base, timeout=30, headers=ADMIN) as http:
        r = await http.post(base + "orchestrators/deadline/x1", content=b"{not json")
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        r = await http.post(base + "orchestrators/deadline/" + "x" * 300, json=1)
        assert r.status_code == 400
        assert (await http.post(base + "instances/nobody/raiseEvent/e", json=1)).status_code == 404
        assert (await http.post(base + "instances/nobody/terminate?reason=x")).status_code == 404
        assert (await http.delete(base + "instances/nobody")).status_code == 404
        assert (await http.delete(base + "instances/")).status_code == 400  # purging by filter needs a start time
        assert (await http.get(base + "instances/")).json() == []  # nothing was created
    async with httpx.AsyncClient(base_url=orchestrations.base, timeout=30) as anonymous:
        assert (await anonymous.get(base + "instances/")).status_code == 401  # the host's system key is needed
