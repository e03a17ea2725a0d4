"""The edges of `aos serve` under a hostile client: keys on the host's own routes, bounded bodies, timeouts and
connections, strict JSON, HEAD, topics nobody reads, permanent errors dead-lettered at once, private files.

Each test runs the real host as a subprocess and talks to it over real sockets.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import HostProcess
from tests.support.host_process import ADMIN, KEY

TALLY = {"type": "tally", "id": "c2", "subscribe": ["t.*"]}
WEBHOOK = "/runtime/webhooks/durabletask/entities/agent/c2"


def _peak_rss(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


async def _request(host: HostProcess, head: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(head)
    await writer.drain()
    return reader, writer


async def _status_and_body(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """Read one response (the host's problem answers carry a content-length)."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).decode("latin-1")
    lines = head.split("\r\n")
    length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
    return int(lines[0].split()[1]), json.loads(await asyncio.wait_for(reader.readexactly(length), 30))


# --- 1. keys on the host's own webhooks ---------------------------------------------------------------------


async def test_the_host_webhooks_need_its_keys_and_the_app_client_still_works(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    sneaky = {"specversion": "1.0", "id": "sneak-1", "source": "x", "type": "t.sneak"}
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        for key in (None, KEY):  # no key, or the function key: neither opens the host's own routes
            headers = {"x-functions-key": key} if key else {"x-functions-key": ""}
            for method, url, body in [("POST", f"{WEBHOOK}?op=deliver", sneaky),
                                      ("POST", f"{WEBHOOK}?op=terminate", None), ("GET", WEBHOOK, None),
                                      ("GET", "/admin", None), ("GET", "/admin/status", None),
                                      ("POST", "/admin/servicebus/topics/agent.events/messages", sneaky)]:
                r = await http.request(method, url, json=body, headers=headers)
                assert r.status_code == 401 and r.json()["title"] == "Unauthorized", (method, url, r.text)
        # The app's own Durable client has the system key: an event goes all the way to the entity.
        r = await http.post("/api/events?wait=20", json={"type": "t.real", "id": "real-1"})
        assert r.status_code == 200 and r.json()["status"] == "completed"
        # The sneaked deliver and terminate changed nothing.
        context = (await http.get("/api/agents/c2/context")).json()
        assert context["state"]["by_type"] == {"t.real": 1}
        assert (await http.get("/api/agents/c2")).json()["state"] != "terminated"
        # With the master key, a topic post becomes an event the kernel records and audits like any other.
        r = await http.post("/admin/servicebus/topics/agent.events/messages", json={**sneaky, "id": "topic-1"},
                            headers=ADMIN)
        assert r.status_code == 201
        for _ in range(200):
            if (await http.get("/api/events/topic-1")).status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert (await http.get("/api/events/topic-1")).json()["type"] == "t.sneak"
        audit = (await http.get("/api/audit", params={"subject": "event/topic-1"})).json()["entries"]
        assert [e["action"] for e in audit] == ["event.accepted"]
        assert (await http.get("/admin/status", headers=ADMIN)).status_code == 200


async def test_a_setting_opens_the_host_webhooks_for_local_development(make_host: Any) -> None:
    host: HostProcess = make_host({"AOS_DEVHOST__OPEN_WEBHOOKS": "1"})
    host.start()
    async with httpx.AsyncClient(base_url=host.base, timeout=30) as http:
        assert (await http.get("/admin/status")).status_code == 200
        r = await http.post("/admin/servicebus/topics/agent.events/messages", json={"type": "t.open", "id": "o-1"})
        assert r.status_code == 201


# --- 2. bodies, timeouts, connections --------------------------------------------------------------------


async def test_a_150_mb_chunked_upload_is_refused_at_the_limit_without_growing_the_host(make_host: Any) -> None:
    limit = 16 * 1024 * 1024
    host: HostProcess = make_host({"AOS_DEVHOST__MAX_BODY_BYTES": str(limit)})
    host.start()
    async with host.client() as http:
        for _ in range(20):  # warm: the kernel, a Durable client, the thread pool
            await http.post("/api/events", json={"type": "warm.up"})
    assert host.proc is not None
    before = _peak_rss(host.proc.pid)
    chunk = b"x" * (1024 * 1024)
    frame = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    reader, writer = await _request(host, f"POST /api/events HTTP/1.1\r\nhost: x\r\nx-functions-key: {KEY}\r\n"
                                          "transfer-encoding: chunked\r\n\r\n".encode())
    sent = 0
    try:
        for _ in range(150):
            writer.write(frame)
            await writer.drain()
            sent += len(chunk)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    except ConnectionError:
        pass  # the host may close once it has answered
    status, body = await _status_and_body(reader)
    writer.close()
    growth = _peak_rss(host.proc.pid) - before
    print(json.dumps({"metric": "peak_rss_growth_150mb_chunked", "value": growth, "unit": "bytes", "limit": limit,
                      "sent": sent}))
    assert status == 413 and str(limit) in body["detail"]
    assert growth <= limit + 32 * 1024 * 1024, f"peak RSS grew by {growth} bytes for a {limit}-byte limit"
    # A route that takes no body reads none: 50 MB to the anonymous health check is refused at the first chunk.
    reader, writer = await _request(host, b"GET /api/health HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
                                          + frame)
    status, body = await _status_and_body(reader)
    writer.close()
    assert status == 413 and "no request body" in body["detail"]
    async with host.client() as http:
        r = await http.post("/admin/servicebus/topics/agent.events/messages", headers=ADMIN,
                            json={"type": "big", "data": "x" * (300 * 1024)})
        assert r.status_code == 413  # a topic message is limited to 256 KiB, like Service Bus standard
        assert (await http.get("/api/health")).status_code == 200


_HEALTH_PROBE = """
import json, sys, time, httpx
latencies = []
with httpx.Client(base_url=sys.argv[1], timeout=5) as http:
    end = time.monotonic() + float(sys.argv[2])
    while time.monotonic() < end or len(latencies) < 100:
        t0 = time.perf_counter()
        assert http.get("/api/health").status_code == 200
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.005)
print(json.dumps(sorted(latencies)))
"""


async def test_slow_clients_are_cut_off_and_health_stays_fast(make_host: Any) -> None:
    timeout = 3.0
    host: HostProcess = make_host({"AOS_DEVHOST__HEADER_TIMEOUT": str(timeout), "AOS_DEVHOST__BODY_TIMEOUT": "3"})
    host.start()
    closed: list[float] = []
    start = time.monotonic()

    async def slowloris() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
        try:
            for byte in b"GET /api/health HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * 1000:
                writer.write(bytes([byte]))
                await writer.drain()
                try:
                    await asyncio.wait_for(reader.read(1024), 0.25)
                    break  # the host answered (its 408) or closed the connection: it is done with us
                except TimeoutError:
                    continue
        except ConnectionError:
            pass
        finally:
            closed.append(time.monotonic() - start)
            writer.close()

    clients = [asyncio.create_task(slowloris()) for _ in range(200)]
    await asyncio.sleep(0.5)  # all 200 are connected and trickling
    probe = await asyncio.create_subprocess_exec(sys.executable, "-c", _HEALTH_PROBE, host.base, str(timeout),
                                                 stdout=subprocess.PIPE)
    out, _ = await probe.communicate()
    await asyncio.wait_for(asyncio.gather(*clients), timeout * 4)
    latencies = json.loads(out)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(json.dumps({"metric": "health_p99_under_200_slowloris", "value": round(p99 * 1000, 2), "unit": "ms",
                      "requests": len(latencies)}))
    print(json.dumps({"metric": "slowloris_last_closed_after", "value": round(max(closed), 2), "unit": "s",
                      "header_timeout": timeout}))
    assert len(closed) == 200 and min(closed) >= timeout - 0.5 and max(closed) <= timeout + 2.5
    assert p99 < 0.100
    # A body that stops arriving is cut off after the body timeout, with a 408.
    t0 = time.monotonic()
    reader, writer = await _request(host, f"POST /api/events HTTP/1.1\r\nhost: x\r\nx-functions-key: {KEY}\r\n"
                                          "content-length: 100\r\n\r\n{".encode())
    status, body = await _status_and_body(reader)
    assert status == 408 and "body" in body["detail"] and 2.5 <= time.monotonic() - t0 <= 6
    assert await asyncio.wait_for(reader.read(), 5) == b""  # and the connection is closed
    writer.close()


async def test_each_request_on_a_kept_alive_connection_gets_its_own_header_deadline(make_host: Any) -> None:
    # The deadline counts from the previous response, not from the connection: a client that sends its next
    # request in time is served however long the connection has lived, and one that then goes quiet is cut off
    # one header timeout after its last answer.
    timeout = 1.5
    host: HostProcess = make_host({"AOS_DEVHOST__HEADER_TIMEOUT": str(timeout)})
    host.start()
    health = b"GET /api/health HTTP/1.1\r\nhost: x\r\n\r\n"
    reader, writer = await _request(host, health)
    assert (await _status_and_body(reader))[0] == 200
    for _ in range(3):  # past the first deadline the connection had, each request within its own
        await asyncio.sleep(timeout * 0.6)
        writer.write(health)
        await writer.drain()
        assert (await _status_and_body(reader))[0] == 200
    answered = time.monotonic()
    status, body = await _status_and_body(reader)  # then nothing more: the host gives up on this connection
    quiet = time.monotonic() - answered
    assert status == 408 and "headers" in body["detail"] and timeout - 0.3 <= quiet <= timeout + 1.5
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_a_full_host_answers_503_with_a_problem_and_recovers(make_host: Any) -> None:
    host: HostProcess = make_host({"AOS_DEVHOST__MAX_CONNECTIONS": "20", "AOS_DEVHOST__HEADER_TIMEOUT": "60"})
    host.start()
    idle = [await asyncio.open_connection("127.0.0.1", host.port) for _ in range(20)]
    async with httpx.AsyncClient(base_url=host.base, timeout=10) as http:
        r = await http.get("/api/health")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.headers["content-type"] == "application/problem+json" and "connections" in r.json()["detail"]
    for _, writer in idle:
        writer.close()
    await asyncio.sleep(0.2)  # the host sees the closes
    async with httpx.AsyncClient(base_url=host.base, timeout=10) as http:
        assert (await http.get("/api/health")).status_code == 200


# --- 3. JSON the kernel cannot keep is a 400 naming why -----------------------------------------------------


async def test_json_that_is_not_acceptable_is_a_400_naming_the_reason(make_host: Any) -> None:
    host: HostProcess = make_host()
    host.start()
    bodies = {
        "nested too deep": b"[" * 1000 + b"]" * 1000,
        "5000 digits": b'{"type": "t.x", "id": "big", "data": {"n": ' + b"9" * 5000 + b"}}",
        "NaN is not a JSON number": b'{"type": "t.x", "id": "nan", "data": {"v": NaN}}',
        "Infinity is not a JSON number": b'{"type": "t.x", "id": "inf", "data": [Infinity]}',
        "out of range": b'{"type": "t.x", "id": "e999", "data": 1e999}',
        "not valid UTF-8": b'{"type": "t.x", "id": "utf", "data": "\xff\xfe"}',
        "surrogate": b'{"type": "t.x", "id": "sur", "data": "\\ud800"}',
    }
    async with host.client() as http:
        assert (await http.post("/api/agents", json=TALLY)).status_code == 201
        for reason, body in bodies.items():
            for url, headers in [("/api/events", {}), ("/api/agents/c2/messages", {}), ("/api/risks", {}),
                                 ("/api/mcp", {"accept": "application/json, text/event-stream"}),
                                 ("/admin/servicebus/topics/agent.events/messages", ADMIN)]:
                r = await http.post(url, content=body, headers={"content-type": "application/json", **headers})
                assert r.status_code == 400 and reason in r.json()["detail"], (url, reason, r.text)
        risk = (await http.post("/api/risks", json={"title": "t", "description": "d", "category": "ops",
                                                    "likelihood": 2, "impact": 2, "owner": "cto"})).json()
        r = await http.patch(f"/api/risks/{risk['id']}", json={"owner": None, "note": "n" * 2000})
        assert r.status_code == 400 and "cannot be null" in r.json()["detail"]
        assert (await http.patch(f"/api/risks/{risk['id']}", json={"note": "n" * 2001})).status_code == 400
        r = await http.delete(f"/api/risks/{risk['id']}", params={"resolution": " "})  # blank: the default one
        assert r.status_code == 200 and r.json()["resolution"].startswith("closed over HTTP")
        for event_id in ("big", "nan", "inf", "e999", "utf", "sur"):
            assert (await http.get(f"/api/events/{event_id}")).status_code == 404  # nothing was recorded
    assert "Traceback" not in host.log.read_text()


# --- 4. HEAD, topics nobody reads, permanent errors, private files -----------------------------------------


async def test_head_topics_dead_letters_and_private_files(make_host: Any) -> None:
    host: HostProcess = make_host()
    for name in ("AOS_DEVHOST__FUNCTION_KEY", "AOS_DEVHOST__MASTER_KEY"):  # the host generates and keeps its keys
        host.env.pop(name)
    host.start()
    keys = json.loads((host.data / "host_keys.json").read_text())
    api, admin = {"x-functions-key": keys["function"]}, {"x-functions-key": keys["master"]}
    async with httpx.AsyncClient(base_url=host.base, timeout=30) as http:
        r = await http.head("/api/health")
        assert r.status_code == 200 and r.content == b"" and r.headers["content-type"].startswith("application/json")
        assert (await http.head("/api/agents", headers=api)).status_code == 200
        assert (await http.head("/api/agents")).status_code == 401
        assert (await http.head("/admin", headers=admin)).status_code == 200
        assert (await http.head("/api/events", headers=api)).status_code == 405  # POST only: no GET, no HEAD

        r = await http.post("/admin/servicebus/topics/nobody.listens/messages", json={"type": "t.x"}, headers=admin)
        assert r.status_code == 404 and "no subscription" in r.json()["detail"]

        # A direct message to an agent that does not exist: dead-lettered on its first delivery, with the reason.
        r = await http.post("/admin/servicebus/topics/agent.messages/messages", headers=admin,
                            json={"type": "t.x", "id": "to-ghost", "subject": "ghost"})
        assert r.status_code == 201
        letters: list[dict[str, Any]] = []
        for _ in range(200):
            letters = (await http.get("/api/deadletters", headers=api)).json()["deadletters"]
            if letters:
                break
            await asyncio.sleep(0.05)
        assert [(d["message_id"], d["delivery_count"]) for d in letters] == [("to-ghost", 1)]
        assert "unknown agent" in letters[0]["reason"] and "ghost" in letters[0]["reason"]
        status = (await http.get("/admin/status", headers=admin)).json()
        messages = next(t for t in status["topics"] if t["topic"] == "agent.messages")
        assert messages["active"] == messages["locked"] == messages["dead_lettered"] == 0  # completed, not retried

        # A stored message that is not an event at all is dead-lettered by the bus at once, not retried.
        with sqlite3.connect(host.data / "bus.db") as db:
            (sub_id,) = db.execute("SELECT id FROM bus_subscriptions WHERE topic = 'agent.events'").fetchone()
            seq = db.execute("INSERT INTO bus_events (topic, event_id, body, published) VALUES "
                             "('agent.events', 'garbled', '{not json', 0)").lastrowid
            db.execute("INSERT INTO bus_messages (sub_id, event_seq, available_at, enqueued) VALUES (?, ?, 0, 0)",
                       (sub_id, seq))
        dead: list[dict[str, Any]] = []
        for _ in range(200):
            status = (await http.get("/admin/status", headers=admin)).json()
            dead = [d for t in status["topics"] if t["topic"] == "agent.events" for d in t["dead_letters"]]
            if dead:
                break
            await asyncio.sleep(0.05)
        assert [(d["reason"], d["delivery_count"]) for d in dead] == [("UndecodableMessage", 1)]
    # Keys and data files: only this user may read them, and they were never created otherwise.
    assert stat.S_IMODE(host.data.stat().st_mode) == 0o700
    files = [p for p in host.data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"host_keys.json", "host.db", "bus.db"}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {p.name: "0o600" for p in files}
