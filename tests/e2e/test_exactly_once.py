"""Exactly once on the local host, tried the way a hostile client would: resend while the event is still
queued behind a backlog, and kill -9 the host at several points of a stream, then resend what was not
acknowledged. Totals are exact, every id ends `completed`, and the audit log has one entry per event."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import httpx

from tests.e2e.conftest import HostProcess

TALLY = {"type": "tally", "id": "tally", "subscribe": ["load.*"]}


async def _context(http: httpx.AsyncClient, agent: str = "tally") -> dict[str, Any]:
    r = await http.get(f"/api/agents/{agent}/context")
    return r.json()["state"] if r.status_code == 200 else {}


async def _get(http: httpx.AsyncClient, url: str) -> httpx.Response:
    # A GET is safe to repeat: a pooled keep-alive connection the server closed while it sat idle (a slow
    # round on a loaded machine) is a transport error, not an answer.
    for attempt in range(3):
        try:
            return await http.get(url)
        except httpx.TransportError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def _drained(http: httpx.AsyncClient, ids: list[str], within: float = 180.0) -> dict[str, str]:
    """Poll until no id is pending; the status of each id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    pending = list(ids)
    statuses: dict[str, str] = {}
    while pending and loop.time() < deadline:
        still = []
        for chunk in range(0, len(pending), 64):
            answers = await asyncio.gather(*(_get(http, f"/api/events/{i}") for i in pending[chunk:chunk + 64]))
            for event_id, r in zip(pending[chunk:chunk + 64], answers, strict=True):
                assert r.status_code == 200, r.text
                statuses[event_id] = r.json()["status"]
                if statuses[event_id] == "pending":
                    still.append(event_id)
        pending = still
        if pending:
            await asyncio.sleep(0.2)  # polling the host's progress over HTTP
    assert not pending, f"{len(pending)} events still pending, e.g. {pending[:3]}"
    return statuses


def _batch(prefix: str, start: int, size: int = 100) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{n}", "type": "load.hit", "source": "tests/e2e"} for n in range(start, start + size)]


async def test_a_resend_behind_a_backlog_is_applied_once(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        first = [_batch("a", n * 100) for n in range(10)]
        answers = await asyncio.gather(*(http.post("/api/events", json=b) for b in first))
        assert all(r.status_code == 202 for r in answers)
        victim = {"id": "victim", "type": "direct.hit"}
        assert (await http.post("/api/agents/tally/messages", json=victim)).status_code == 202
        more = [_batch("b", n * 100) for n in range(2)]
        assert all(r.status_code == 202 for r in await asyncio.gather(*(http.post("/api/events", json=b)
                                                                         for b in more)))
        resent = await http.post("/api/agents/tally/messages", json=victim)  # while it is still queued
        assert resent.status_code in (200, 202) and resent.json()["id"] == "victim"
        again = await http.post("/api/events", json=first[3])  # a whole batch resent too
        assert again.status_code == 202
        ids = [e["id"] for b in first + more for e in b] + ["victim"]
        statuses = await _drained(http, ids)
        assert set(statuses.values()) == {"completed"}
        state = await _context(http)
        assert state["total"] == len(ids) == 1201
        assert state["by_type"] == {"load.hit": 1200, "direct.hit": 1}


async def _stream(http: httpx.AsyncClient, client: int, batches: int, acked: set[str], sent: list[list[dict]]
                  ) -> None:
    """One client: 100-event batches to /api/events and, every third batch, direct messages instead."""
    for n in range(batches):
        prefix = f"c{client}-{n}"
        if n % 3 == 2:
            batch = [{"id": f"{prefix}-m{k}", "type": "direct.hit"} for k in range(10)]
            sent.append(batch)
            for message in batch:
                try:
                    r = await http.post("/api/agents/tally/messages", json=message)
                except httpx.TransportError:
                    return  # the host died: not acknowledged
                if r.status_code in (200, 202):
                    acked.add(message["id"])
            continue
        batch = _batch(prefix, 0)
        sent.append(batch)
        try:
            r = await http.post("/api/events", json=batch)
        except httpx.TransportError:
            return
        if r.status_code == 202:
            acked.update(e["id"] for e in batch)


async def _resend(http: httpx.AsyncClient, batches: list[list[dict[str, Any]]], acked: set[str]) -> None:
    for batch in batches:
        missing = [e for e in batch if e["id"] not in acked]
        if not missing:
            continue
        if missing[0]["type"] == "direct.hit":
            for message in missing:
                r = await http.post("/api/agents/tally/messages", json=message)
                assert r.status_code in (200, 202), r.text
        else:
            r = await http.post("/api/events", json=missing)
            assert r.status_code in (200, 202), r.text
        acked.update(e["id"] for e in missing)


async def test_kill_9_at_three_points_then_resending_ends_exact(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    sent: list[list[dict[str, Any]]] = []
    acked: set[str] = set()
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
    per_round = 8 * (4 * 100 + 2 * 10)  # 8 clients, each 4 batches of 100 events and 2 of 10 direct messages
    for round_no, share in enumerate((0.1, 0.4, 0.7)):
        before = len(acked)
        async with host.client() as http:
            clients = [asyncio.ensure_future(_stream(http, c + 8 * round_no, 6, acked, sent)) for c in range(8)]
            # Pull the plug once that share of the round is acknowledged: a point in the stream, however fast
            # the host is (a fixed delay let a faster host finish the round first).
            while len(acked) - before < share * per_round and not all(c.done() for c in clients):
                await asyncio.wait(clients, timeout=0.01)  # the clients' progress, looked at every 10 ms
            host.kill9()
            await asyncio.gather(*clients)
        assert len(acked) < sum(len(b) for b in sent), "the kill came after the stream ended"
        host.start()
        async with host.client() as http:
            await _resend(http, sent, acked)
    async with host.client() as http:
        ids = [e["id"] for b in sent for e in b]
        assert len(set(ids)) == len(ids)
        statuses = await _drained(http, ids)
        assert set(statuses.values()) == {"completed"}
        state = await _context(http)
        assert state["total"] == len(ids)
        accepted = await _audit_count(http, "event.accepted")
        assert accepted == len(ids)
        verify = (await http.get("/api/audit/verify")).json()
        assert verify["ok"], verify
    host.stop()
    for name in ("state.db", "audit.db"):
        path = next(host.data.rglob(name))
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def _audit_count(http: httpx.AsyncClient, action: str) -> int:
    count, after = 0, 0
    while True:
        r = await http.get("/api/audit", params={"action": action, "after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        entries = r.json()["entries"]
        count += len(entries)
        if len(entries) < 1000:
            return count
        after = entries[-1]["seq"]
