"""`aos serve --instances 3`: three worker processes over one data folder behind one port, as three Functions
instances share Storage, Service Bus and the task hub. Registrations route from any instance at once, totals
are exact, an agent never runs on two instances at once, a killed instance's partitions move to the others,
and a timer fires once per slot."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import HostProcess
from tests.support.host_process import ADMIN

LEASE_TTL = 3.0
SETTINGS = {"AOS_DEVHOST__LEASE_TTL": str(LEASE_TTL), "AOS_DEVHOST__LOCK_DURATION": "5",
            "AOS_TICK_SCHEDULE": "* * * * * *"}  # the timer fires every second
CONFIG = {"agents": {"types": {"probe": "tests.support.agents:Probe"}}}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    host = HostProcess(tmp_path_factory.mktemp("instances"), SETTINGS, CONFIG, instances=3)
    host.start()
    yield host
    host.stop()


async def _status(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get("/admin/status", headers=ADMIN)
    assert r.status_code == 200, r.text
    return r.json()


async def _context(http: httpx.AsyncClient, agent: str) -> dict[str, Any]:
    r = await http.get(f"/api/agents/{agent}/context")
    return r.json()["state"] if r.status_code == 200 else {}


async def _wait_for_totals(http: httpx.AsyncClient, expected: dict[str, int], within: float = 240.0) -> None:
    """Poll the agents' contexts until each total reaches what was sent, then check none went past it."""
    deadline = time.monotonic() + within
    totals: dict[str, int] = {}
    while time.monotonic() < deadline:
        states = await asyncio.gather(*(_context(http, a) for a in expected))
        totals = {a: s.get("total", 0) for a, s in zip(expected, states, strict=True)}
        if all(totals[a] >= n for a, n in expected.items()):
            break
        await asyncio.sleep(0.5)  # polling the host's progress over HTTP
    assert totals == expected


async def _completed(http: httpx.AsyncClient, event_id: str, within: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        r = await http.get(f"/api/events/{event_id}")
        if r.status_code == 200 and r.json()["status"] != "pending":
            return dict(r.json())
        await asyncio.sleep(0.05)  # polling the host's progress over HTTP
    raise AssertionError(f"event {event_id} still pending after {within}s")


async def _balanced_status(http: httpx.AsyncClient, within: float = 4 * LEASE_TTL) -> dict[str, Any]:
    """The status once every partition is held by exactly one live instance. Right after start the first
    instance holds them all and hands the extra ones over in its next lease rounds, so a partition may be
    free for a round; within a few lease times every one must be held."""
    deadline = time.monotonic() + within
    while True:
        status = await _status(http)
        held = sorted(p for i in status["instances"] if i["live"] for p in i["partitions"])
        if held == list(range(status["partitions"])) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.2)  # polling the instances' lease rounds


async def test_requests_are_spread_and_the_status_lists_every_instance(host: HostProcess) -> None:
    async with host.client() as http:
        answered = {(await http.get("/api/health")).headers["x-aos-instance"] for _ in range(6)}
        assert answered == {"0", "1", "2"}
        status = await _balanced_status(http)
    live = [i for i in status["instances"] if i["live"]]
    assert len(live) == 3 and len({i["pid"] for i in live}) == 3
    assert sorted(p for i in live for p in i["partitions"]) == list(range(status["partitions"]))
    assert all(time.time() - i["heartbeat"] < LEASE_TTL for i in live)


async def test_an_agent_registered_through_one_instance_is_routed_by_the_next_at_once(host: HostProcess) -> None:
    async with host.client() as http:
        for n in range(20):
            agent = f"fresh-{n}"
            r = await http.post("/api/agents", json={"type": "tally", "id": agent, "subscribe": [f"fresh{n}.*"]})
            assert r.status_code == 201, r.text
            registered_on = r.headers["x-aos-instance"]
            r = await http.post("/api/events", json={"id": f"http-{n}", "type": f"fresh{n}.hit"})
            assert r.status_code == 202, r.text
            assert r.headers["x-aos-instance"] != registered_on  # the next request, another instance
            assert [t["agent_id"] for t in (await _completed(http, f"http-{n}"))["results"]] == [agent]
            posted = await http.post("/admin/servicebus/topics/agent.events/messages", headers=ADMIN,
                                     json={"id": f"topic-{n}", "type": f"fresh{n}.hit", "source": "tests"})
            assert posted.status_code == 201, posted.text
            assert [t["agent_id"] for t in (await _completed(http, f"topic-{n}"))["results"]] == [agent]
        assert (await _context(http, "fresh-19"))["total"] == 2


async def _client(http: httpx.AsyncClient, client: int, agents: int, rounds: int) -> None:
    """One client: each round a batch with one event per agent, then a direct message to some agents."""
    for n in range(rounds):
        batch = [{"id": f"c{client}-{n}-e{k}", "type": f"n{k}.hit"} for k in range(agents)]
        r = await http.post("/api/events", json=batch)
        assert r.status_code == 202, r.text
        for k in range(client % 4, agents, 4):  # 12 or 13 direct messages a round
            r = await http.post(f"/api/agents/t{k}/messages", json={"id": f"c{client}-{n}-m{k}", "type": "direct"})
            assert r.status_code in (200, 202), r.text


async def test_5000_events_and_messages_from_8_clients_to_50_agents_total_exactly(host: HostProcess) -> None:
    agents, clients, rounds = 50, 8, 10  # 8 x 10 x 50 events + 1,000 messages = 5,000 + the probe's 4,000
    async with host.client() as http:
        for k in range(agents):
            r = await http.post("/api/agents", json={"type": "tally", "id": f"t{k}", "subscribe": [f"n{k}.*"]})
            assert r.status_code == 201, r.text
        r = await http.post("/api/agents", json={"type": "probe", "id": "probe", "subscribe": ["n*.hit"]})
        assert r.status_code == 201, r.text
        await asyncio.gather(*(_client(http, c, agents, rounds) for c in range(clients)))
        expected = {f"t{k}": clients * rounds + sum(1 for c in range(clients) if k % 4 == c % 4) * rounds
                    for k in range(agents)}
        assert sum(expected.values()) == 5000
        await _wait_for_totals(http, {**expected, "probe": clients * rounds * agents})
        probe = await _context(http, "probe")
    assert probe.get("overlaps", 0) == 0  # never ran on two instances (or twice in one) at once
    assert probe["pids"]  # where it ran, for the record


async def test_a_timer_fires_once_per_slot_across_the_instances(host: HostProcess) -> None:
    async with host.client() as http:
        urls = [i["url"] for i in (await _status(http))["instances"] if i["live"]]

        async def fired() -> int:
            counts = []
            for url in urls:  # each instance's own invocation counts
                r = await http.get(f"{url}/admin/status", headers=ADMIN)
                tick = next(f for f in r.json()["functions"] if f["name"] == "tick")
                counts.append(tick["counts"]["Succeeded"] + tick["counts"]["Failed"])
            return sum(counts)

        before, started = await fired(), time.monotonic()
        await asyncio.sleep(10.5)  # ten one-second slots
        after, elapsed = await fired(), time.monotonic() - started
    assert int(elapsed) - 1 <= after - before <= int(elapsed) + 1


async def test_kill_9_of_an_instance_mid_stream_then_resending_keeps_totals_exact(make_host: Any) -> None:
    host: HostProcess = make_host(SETTINGS, CONFIG, instances=3)
    host.start()
    agents = 10
    sent: list[dict[str, Any]] = []
    acked: set[str] = set()

    async def stream(http: httpx.AsyncClient, client: int, rounds: int) -> None:
        for n in range(rounds):
            batch = [{"id": f"k{client}-{n}-{k}", "type": f"n{k}.hit"} for k in range(agents)]
            sent.extend(batch)
            try:
                r = await http.post("/api/events", json=batch)
            except httpx.TransportError:
                continue  # cut off with the instance: not acknowledged
            if r.status_code == 202:
                acked.update(e["id"] for e in batch)

    async with host.client() as http:
        for k in range(agents):
            assert (await http.post("/api/agents", json={"type": "tally", "id": f"t{k}",
                                                         "subscribe": [f"n{k}.*"]})).status_code == 201
        status = await _status(http)
        victim = max((i for i in status["instances"] if i["live"]), key=lambda i: len(i["partitions"]))
        streams = asyncio.gather(*(stream(http, c, 30) for c in range(4)))
        await asyncio.sleep(1.0)  # mid-stream
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.monotonic()
        moved = None  # watched while the streams go on
        while time.monotonic() - killed < 3 * LEASE_TTL:
            live = [i for i in (await _status(http))["instances"] if i["live"]]
            if victim["id"] not in {i["id"] for i in live} and \
                    sorted(p for i in live for p in i["partitions"]) == list(range(status["partitions"])):
                moved = time.monotonic() - killed
                break
            await asyncio.sleep(0.1)  # polling the host's progress over HTTP
        # Expiry plus one renewal round at most (a dead owner's leases are taken at once); slack for a loaded machine.
        assert moved is not None and moved <= 2 * LEASE_TTL, moved
        await streams
        for chunk in range(0, len(sent), agents):
            batch = [e for e in sent[chunk:chunk + agents] if e["id"] not in acked]
            if batch:
                r = await http.post("/api/events", json=batch)
                assert r.status_code == 202, r.text
        await _wait_for_totals(http, {f"t{k}": len(sent) // agents for k in range(agents)})
