"""Workflows as Durable orchestrations on the local host: `/api/workflows` through function_app, its
`aos_workflow` orchestrator and `aos_workflow_step` activity, the kernel's one way in and the agent entities."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.services.devhost.conftest import FUNCTION_KEY, MASTER_KEY

HEADERS = {"x-functions-key": FUNCTION_KEY}


async def _until(http: httpx.AsyncClient, url: str, done: Any, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        body = (await http.get(url)).json()
        if done(body):
            return body  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.1)


def _workflow(workflow_id: str, topic: str) -> dict[str, Any]:
    return {"id": workflow_id, "name": "three events", "input": {"type": f"{topic}.default"}, "steps": [
        {"name": "a", "action": "event", "input": {"type": f"{topic}.a", "data": {"n": 1}}},
        {"name": "b", "action": "event", "input": {"type": f"{topic}.b"}, "depends_on": ["a"], "retries": 2},
        {"name": "go", "action": "wait", "input": {"event": "go", "timeout": 60}},
        {"name": "c", "action": "event", "depends_on": ["b", "go"]}]}


async def test_a_workflow_runs_its_steps_once_each_and_resends_start_nothing(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host, headers=HEADERS, timeout=30) as http:
        assert (await http.post("/api/agents", json={"type": "tally", "id": "wf-t", "subscribe": ["wf.*"]})
                ).status_code in (200, 201)
        spec = _workflow("wf-1", "wf")
        first, again = await asyncio.gather(http.post("/api/workflows", json=spec),
                                            http.post("/api/workflows", json=spec))
        assert first.status_code == again.status_code == 202, (first.text, again.text)
        assert first.headers["location"] == again.headers["location"] == "/api/workflows/wf-1"
        waiting = await _until(http, "/api/workflows/wf-1", lambda b: b["steps"]["b"]["status"] == "completed")
        assert waiting["status"] == "running" and waiting["steps"]["go"]["status"] == "running"
        assert waiting["steps"]["c"]["status"] == "pending"
        raised = await http.post("/api/workflows/wf-1/events/go", json={"approved": True})
        assert raised.status_code == 202
        done = await _until(http, "/api/workflows/wf-1", lambda b: b["status"] != "running")
        assert done["status"] == "completed", done
        assert done["output"]["go"] == {"approved": True}
        # A step's event id is derived from the workflow and the step: the kernel accepted each once.
        for step, event_type in (("a", "wf.a"), ("b", "wf.b"), ("c", "wf.default")):
            event = await _until(http, f"/api/events/wf-1.{step}", lambda b: b.get("status") == "completed")
            assert event["type"] == event_type and event["targets"] == ["wf-t"], event
        context = await _until(http, "/api/agents/wf-t/context", lambda b: b["state"].get("total") == 3)
        assert context["state"]["total"] == 3
        # Once more, after it finished: still one instance, nothing runs again.
        assert (await http.post("/api/workflows", json=spec)).json()["status"] == "completed"
        admin = (await http.get("/admin/status", headers={"x-functions-key": MASTER_KEY})).json()
        assert [o["instanceId"] for o in admin["orchestrations"]].count("wf-1") == 1
        await asyncio.sleep(0.5)
        assert (await http.get("/api/agents/wf-t/context")).json()["state"]["total"] == 3


async def test_bad_definitions_are_400_and_change_nothing(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host, headers=HEADERS, timeout=30) as http:
        cycle = {"id": "wf-bad", "name": "cycle", "steps": [
            {"name": "a", "action": "event", "depends_on": ["b"]},
            {"name": "b", "action": "event", "depends_on": ["a"]}]}
        r = await http.post("/api/workflows", json=cycle)
        assert r.status_code == 400 and "cycle" in r.json()["detail"]
        unknown = {"id": "wf-bad", "name": "x", "steps": [{"name": "a", "action": "teleport"}]}
        r = await http.post("/api/workflows", json=unknown)
        assert r.status_code == 400 and "unknown step kind 'teleport'" in r.json()["detail"]
        r = await http.post("/api/workflows", json={"name": "x", "steps": [{"name": "a", "action": "event"}],
                                                    "extra": 1})
        assert r.status_code == 400
        assert (await http.get("/api/workflows/wf-bad")).status_code == 404  # nothing was recorded
        r = await http.post("/api/workflows", json={"id": "wf-2", "name": "w", "steps": [
            {"name": "w", "action": "wait", "input": {"event": "never"}}]})
        assert r.status_code == 202
        r = await http.post("/api/workflows", json={"id": "wf-2", "name": "other", "steps": [
            {"name": "w", "action": "wait"}]})
        assert r.status_code == 409  # the id is taken by another definition


async def test_terminate_and_events_after_the_end(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host, headers=HEADERS, timeout=30) as http:
        r = await http.post("/api/workflows", json={"id": "wf-3", "name": "w", "steps": [
            {"name": "w", "action": "wait", "input": {"event": "never"}}]})
        assert r.status_code == 202
        await _until(http, "/api/workflows/wf-3", lambda b: b["status"] == "running")
        assert (await http.delete("/api/workflows/wf-3?reason=not%20needed")).status_code == 202
        done = await _until(http, "/api/workflows/wf-3", lambda b: b["status"] != "running")
        assert done["status"] == "terminated"
        assert (await http.delete("/api/workflows/wf-3")).status_code == 409
        assert (await http.post("/api/workflows/wf-3/events/never", json=1)).status_code == 409
        assert (await http.get("/api/workflows/nope")).status_code == 404
        assert (await http.delete("/api/workflows/nope")).status_code == 404


async def test_a_failing_step_fails_the_workflow_with_its_reason(in_process_host: str) -> None:
    async with httpx.AsyncClient(base_url=in_process_host, headers=HEADERS, timeout=30) as http:
        # An event nobody can apply: a direct message to an agent that does not exist fails the step.
        r = await http.post("/api/workflows", json={"id": "wf-4", "name": "fails", "steps": [
            {"name": "a", "action": "event", "input": {"type": "nobody.listens", "subject": "ghost"}, "retries": 1},
            {"name": "b", "action": "event", "input": {"type": "wf.never"}, "depends_on": ["a"]}]})
        assert r.status_code == 202
        done = await _until(http, "/api/workflows/wf-4", lambda b: b["status"] not in ("running", "pending"))
        assert done["status"] == "failed" and "step 'a' failed" in done["error"], done
        assert done["steps"]["a"]["status"] == "failed" and done["steps"]["a"]["attempts"] == 2
        assert done["steps"]["b"]["status"] == "pending"


def test_kill_9_mid_workflow_applies_each_step_once(make_host: Any) -> None:
    host = make_host(config={"agents": {"instances": [
        {"type": "tally", "id": "wf-crash", "config": {"subscribe": ["crash.*"]}}]}})
    host.start()
    steps = [{"name": f"s{i}", "action": "event", "input": {"type": f"crash.s{i}"}} for i in range(20)]
    steps.append({"name": "last", "action": "event", "input": {"type": "crash.last"},
                  "depends_on": [s["name"] for s in steps]})
    with httpx.Client(base_url=host.base, headers={"x-functions-key": host.env["AOS_DEVHOST__FUNCTION_KEY"]},
                      timeout=30) as http:
        assert http.post("/api/workflows", json={"id": "wf-crash-1", "name": "crash", "steps": steps}
                         ).status_code == 202
        deadline = time.monotonic() + 60
        while http.get("/api/events/wf-crash-1.s0").status_code == 404:  # the first steps are being applied
            assert time.monotonic() < deadline
            time.sleep(0.02)
        host.kill9()
        host.start()
        deadline = time.monotonic() + 120
        while (status := http.get("/api/workflows/wf-crash-1").json())["status"] == "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        assert status["status"] == "completed", status
        deadline = time.monotonic() + 60
        while (context := http.get("/api/agents/wf-crash/context").json())["state"].get("total") != 21:
            assert time.monotonic() < deadline, context
            time.sleep(0.2)
        time.sleep(1)
        assert http.get("/api/agents/wf-crash/context").json()["state"]["total"] == 21  # each step once
