"""The issue's checks: 1,000 events plus timer events reach a tally agent; a kill -9 loses and doubles nothing;
bad input is a 4xx and a poison message is dead-lettered while the host keeps serving."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.e2e.conftest import HostProcess
from tests.support.host_process import ADMIN

TALLY = {"type": "tally", "id": "tally", "subscribe": ["*"]}
TIMER_CONFIG = {"schedules": [{"id": "beat", "cron": "*/2 * * * * *", "event_type": "timer.beat"}]}


async def _post_all(http: httpx.AsyncClient, events: list[dict[str, Any]], acked: set[str] | None = None,
                    concurrency: int = 16, milestone: tuple[int, asyncio.Event] | None = None) -> None:
    queue = list(events)

    async def worker() -> None:
        while queue:
            event = queue.pop(0)
            try:
                r = await http.post("/api/events", json=event)
            except httpx.TransportError:
                return  # the host died: this one is not acknowledged
            assert r.status_code in (200, 202), r.text
            if acked is not None:
                acked.add(event["id"])
                if milestone is not None and len(acked) >= milestone[0]:
                    milestone[1].set()

    await asyncio.gather(*[worker() for _ in range(concurrency)])


async def _context(http: httpx.AsyncClient, agent: str = "tally") -> dict[str, Any]:
    r = await http.get(f"/api/agents/{agent}/context")
    return r.json()["state"] if r.status_code == 200 else {}


async def _wait_for(http: httpx.AsyncClient, check: Any, within: float = 90.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    state: dict[str, Any] = {}
    while loop.time() < deadline:
        state = await _context(http)
        if check(state):
            return state
        await asyncio.sleep(0.2)  # polling the agent's progress over HTTP
    raise AssertionError(f"agent state never got there: {state}")


async def test_http_topic_and_timer_events_all_reach_the_agent(make_host: Any) -> None:
    host: HostProcess = make_host({"AOS_TICK_SCHEDULE": "*/1 * * * * *"}, TIMER_CONFIG)
    host.start()
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        await _post_all(http, [{"type": "via.http", "id": f"http-{i}", "data": {"i": i}} for i in range(500)])
        for start in range(0, 500, 50):
            batch = [{"type": "via.topic", "id": f"topic-{i}"} for i in range(start, start + 50)]
            r = await http.post("/admin/servicebus/topics/agent.events/messages", json=batch, headers=ADMIN)
            assert r.status_code == 201

        def complete(state: dict[str, Any]) -> bool:
            by_type = state.get("by_type", {})
            return (by_type.get("via.http") == 500 and by_type.get("via.topic") == 500
                    and by_type.get("timer.beat", 0) >= 1)

        state = await _wait_for(http, complete)
        await asyncio.sleep(0.5)
        state = await _context(http)
        assert state["total"] == 1000 + state["by_type"]["timer.beat"]
        assert set(state["by_type"]) == {"via.http", "via.topic", "timer.beat"}
        status = (await http.get("/admin/status", headers=ADMIN)).json()
        page = (await http.get("/admin", headers=ADMIN)).text
    functions = {f["name"]: f for f in status["functions"]}
    assert functions["tick"]["counts"]["Succeeded"] >= 1
    assert functions["events_topic"]["counts"]["Succeeded"] == 500
    assert any(e["name"] == "agent" and e["key"] == "tally" and e["exists"] for e in status["entities"])
    # The page a person reads: settings resolved as the host uses them, each route's methods, no Python reprs.
    assert functions["events_topic"]["description"].startswith("Service Bus agent.events/")
    assert functions["tick"]["description"].startswith("timer */1 * * * * *")
    assert "HTTP POST /events" in functions["post_events"]["description"]
    assert "%AOS_" not in page and "True" not in page and "False" not in page and "{'" not in page


async def test_kill_9_while_posting_loses_and_doubles_nothing(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    events = [{"type": "crash.test", "id": f"crash-{i}"} for i in range(2000)]
    acked: set[str] = set()
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        reached = asyncio.Event()
        poster = asyncio.create_task(_post_all(http, events, acked, milestone=(600, reached)))
        await reached.wait()
        host.kill9()
        await poster
    assert 600 <= len(acked) < 2000
    host.start()
    async with host.client() as http:
        # The client resends what was not acknowledged, with the same ids.
        await _post_all(http, [e for e in events if e["id"] not in acked])
        state = await _wait_for(http, lambda s: s.get("total", 0) >= 2000)
        await asyncio.sleep(1.0)
        state = await _context(http)
    assert state["total"] == 2000 and state["by_type"] == {"crash.test": 2000}


async def test_bad_input_is_4xx_and_poison_is_dead_lettered(make_host: Any) -> None:
    host: HostProcess = make_host({"AOS_DEVHOST__MAX_DELIVERY_COUNT": "3"})
    host.start()
    async with host.client() as http:
        assert (await http.get("/api/no/such/route")).status_code == 404
        assert (await http.get("/api/agents", headers={"x-functions-key": "wrong"})).status_code == 401
        r = await http.post("/api/events", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400
        assert (await http.post("/api/events", json={"data": "no type"})).status_code == 400
        # A direct message without a target agent can never be processed: dead-lettered on its first delivery.
        r = await http.post("/admin/servicebus/topics/agent.messages/messages", json={"type": "x.y", "id": "poison-1"},
                            headers=ADMIN)
        assert r.status_code == 201
        letters: list[dict[str, Any]] = []
        for _ in range(300):
            letters = (await http.get("/api/deadletters")).json()["deadletters"]
            if letters:
                break
            await asyncio.sleep(0.05)
        assert letters and letters[0]["message_id"] == "poison-1" and "subject" in letters[0]["reason"]
        assert letters[0]["delivery_count"] == 1
        assert (await http.get("/api/health")).status_code == 200
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
