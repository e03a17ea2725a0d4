"""The front door of `aos serve --instances N` when a worker dies during a request it was sent: a GET, HEAD or
OPTIONS request (it changes nothing) is answered by the next worker; any other gets 502, because the dead
worker may have acted on it and only the client can send it again safely (with the same event id)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from services.devhost.instances import FrontDoor, Worker, free_port, wait_until_listening
from tests.services.devhost.conftest import ServerThread

# A worker that reads each request, then closes the connection without answering, as one killed mid-request.
DROPS = """
import socket, sys
server = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, _ = server.accept()
    conn.recv(65536)
    conn.close()
"""
# A worker that answers every request with 200 and the method it got.
ANSWERS = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Echo(BaseHTTPRequestHandler):
    def answer(self):
        body = self.command.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_GET = do_HEAD = do_OPTIONS = do_POST = do_PUT = do_DELETE = answer
    def log_message(self, *args): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""


@pytest.fixture
def front_door() -> Iterator[tuple[str, FrontDoor]]:
    workers = []
    for index, script in enumerate([DROPS, ANSWERS]):
        port = free_port()
        workers.append(Worker(index, port, subprocess.Popen([sys.executable, "-c", script, str(port)])))
    door = FrontDoor(workers)
    port = free_port()
    try:
        wait_until_listening(workers)
        with ServerThread(door, port):
            yield f"http://127.0.0.1:{port}", door
    finally:
        for worker in workers:
            worker.proc.kill()
            worker.proc.wait(10)


def _dropping_worker_next(door: FrontDoor) -> None:
    door._turn = iter(range(10**6))  # round robin from worker 0, the one that drops the connection


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
def test_a_request_that_changes_nothing_goes_to_the_next_worker_when_one_dies_with_it(
        front_door: tuple[str, FrontDoor], method: str) -> None:
    base, door = front_door
    _dropping_worker_next(door)
    r = httpx.request(method, f"{base}/admin/status", timeout=10)
    assert r.status_code == 200
    assert r.headers["x-aos-instance"] == "1"
    if method != "HEAD":
        assert r.text == method


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_a_request_that_may_change_something_gets_502_and_is_not_sent_again(
        front_door: tuple[str, FrontDoor], method: str) -> None:
    base, door = front_door
    _dropping_worker_next(door)
    r = httpx.request(method, f"{base}/api/events", json=[{"id": "e1", "type": "a.b"}], timeout=10)
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"] == "instance 0 failed during the request"
    # The answering worker never saw it: the next request goes to it and is the first it counts.
    assert httpx.request(method, f"{base}/api/events", timeout=10).headers["x-aos-instance"] == "1"
