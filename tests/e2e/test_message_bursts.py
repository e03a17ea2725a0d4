"""Direct messages in bursts on the local host's hot path: many at once on many connections with every id sent
twice at the same moment, and many pipelined on one connection (HTTP/1.1, all written before any answer is
read). Each id is answered 2xx, ends `completed`, and is counted once by its tally agent."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from tests.e2e.conftest import KEY, HostProcess
from tests.e2e.test_exactly_once import _context, _drained
from tests.support.host_process import ADMIN

AGENTS = [f"burst{i}" for i in range(4)]


async def _register(host: HostProcess) -> None:
    async with host.client() as http:
        for agent in AGENTS:
            assert (await http.post("/api/agents", json={"type": "tally", "id": agent})).status_code == 201


async def _totals_match(host: HostProcess, ids: list[str]) -> None:
    """Every id completed, and each agent counted exactly the ids sent to it (by the agent in the id)."""
    async with host.client() as http:
        statuses = await _drained(http, ids)
        assert set(statuses.values()) == {"completed"}
        expected = Counter(i.split(":")[0] for i in ids)
        totals = {agent: (await _context(http, agent)).get("total", 0) for agent in AGENTS}
        assert totals == {agent: expected[agent] for agent in AGENTS}


async def test_a_concurrent_burst_with_every_id_sent_twice_applies_each_once(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    await _register(host)
    ids = [f"{AGENTS[n % len(AGENTS)]}:c{n}" for n in range(160)]
    slots = asyncio.Semaphore(16)  # two copies each: the client's 32 connections all busy
    async with host.client() as http:
        async def send(event_id: str) -> list[int]:
            agent = event_id.split(":")[0]
            async with slots:  # both copies of an id in flight together: one arrives while the other is pending
                answers = await asyncio.gather(*(http.post(f"/api/agents/{agent}/messages",
                                                           json={"id": event_id, "type": "burst.hit"})
                                                 for _ in range(2)))
            return [r.status_code for r in answers]

        answers = [status for pair in await asyncio.gather(*(send(i) for i in ids)) for status in pair]
    assert set(answers) <= {200, 202}, Counter(answers)
    await _totals_match(host, ids)


def _request(port: int, event_id: str) -> bytes:
    agent = event_id.split(":")[0]
    body = json.dumps({"id": event_id, "type": "burst.hit"}).encode()
    return (f"POST /api/agents/{agent}/messages HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nx-functions-key: {KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return status, json.loads(await reader.readexactly(length))


async def test_a_pipelined_burst_on_one_connection_applies_each_id_once(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    await _register(host)
    ids = [f"{AGENTS[n % len(AGENTS)]}:p{n}" for n in range(120)]
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    try:
        writer.write(b"".join(_request(host.port, i) for i in ids))  # every request before any answer
        await writer.drain()
        answers = [await asyncio.wait_for(_read_answer(reader), 60) for _ in ids]
    finally:
        writer.close()
    # Answered in order, one per request, each naming its own event.
    assert [(status, body["id"]) for status, body in answers] == [(202, i) for i in ids]
    await _totals_match(host, ids)


async def test_events_to_one_agent_reach_its_entity_in_fewer_signals_than_events(make_host: Any) -> None:
    # Each batch's events to one agent go in one signal, and signals that would follow one still in flight are
    # merged: the entity gets fewer operations than events, and each event is still applied exactly once.
    host: HostProcess = make_host()
    host.start()
    async with host.client() as http:
        created = await http.post("/api/agents", json={"type": "tally", "id": "hot", "subscribe": ["hot.*"]})
        assert created.status_code == 201
        batches = [[{"id": f"hot-{b}-{n}", "type": f"hot.{n % 3}", "source": "burst"} for n in range(10)]
                   for b in range(20)]
        batches[7].append(batches[3][0])  # an id resent in another batch at the same moment
        answers = await asyncio.gather(*(http.post("/api/events", json=batch) for batch in batches))
        assert {r.status_code for r in answers} <= {200, 202}
        ids = [event["id"] for batch in batches for event in batch[:10]]
        statuses = await _drained(http, ids)
        assert set(statuses.values()) == {"completed"}
        assert (await _context(http, "hot"))["total"] == 200
        operations = (await http.get("/admin/status", headers=ADMIN)).json()["entity_operations_processed"]
    assert operations <= len(batches)  # one per batch at most, not one per event
