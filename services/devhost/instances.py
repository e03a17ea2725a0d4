"""`aos serve --instances N`: N worker processes over one data folder, behind one front door.

Each worker is a whole local host (`aos serve` on a port of its own) that loads `function_app` the way a
Functions instance does, with its own warm kernel; the workers share only the data folder, as Azure instances
share only Storage, Service Bus and the task hub. They divide the work the way instances do on Azure:

- HTTP: the front door on the public port sends each request to the next live worker (round robin), and to
  the one after when a worker does not accept the connection (it died: nothing was sent to it) or when it
  dies during a GET, HEAD or OPTIONS request (those change nothing, so sending them again is harmless).
- Service Bus topic triggers: every worker peek-locks from the same subscriptions (competing consumers); the
  locks of a worker that dies expire and the messages go to another.
- Durable entities and timers: by leases in the shared host database (services/devhost/leases.py).

A worker that dies is not replaced (the others take over its work); the front door answers 503 when none is
left. Ctrl-C or SIGTERM stops the workers, then the front door.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from services.devhost.problem import problem
from services.devhost.settings import HostSettings

log = logging.getLogger("aos.devhost.instances")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "host"}
_START_TIMEOUT = 120.0
# Requests that change nothing (RFC 9110 safe methods): one cut off by a dying worker is sent again to the next.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Worker:
    index: int
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the system picks it), for a server about to start."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_workers(count: int, settings: HostSettings, *, app: str, log_level: str) -> list[Worker]:
    """Start `count` workers, each `aos serve` on a free loopback port over `settings.data_dir`."""
    workers = []
    for index in range(count):
        port = free_port("127.0.0.1")
        env = {**os.environ, "AOS_DEVHOST__INSTANCE_ID": f"instance-{index}",
               "AOS_DEVHOST__SUPERVISOR_PID": str(os.getpid())}
        cmd = [sys.executable, "-m", "services.cli", "serve", "--instances", "1", "--port", str(port),
               "--data", str(settings.data_dir), "--app", app, "--app-dir", str(settings.app_dir),
               "--log-level", log_level]
        if settings.settings_file is not None:
            cmd += ["--settings", str(settings.settings_file)]
        # A session of its own: a Ctrl-C reaches the supervisor only, which stops the workers once each.
        proc = subprocess.Popen(cmd, cwd=settings.app_dir, env=env, stdout=subprocess.DEVNULL,
                                start_new_session=True)
        workers.append(Worker(index, port, proc))
    return workers


def wait_until_listening(workers: list[Worker], timeout: float = _START_TIMEOUT) -> None:
    """Return once every worker accepts connections; RuntimeError if one exits or the time runs out."""
    deadline = time.monotonic() + timeout
    for worker in workers:
        while True:
            if not worker.alive():
                raise RuntimeError(f"instance {worker.index} exited with {worker.proc.returncode} while starting")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", worker.port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"instance {worker.index} did not listen within {timeout:g}s")
            time.sleep(0.1)  # waiting for a process to listen


def stop_workers(workers: list[Worker], timeout: float = 20.0) -> None:
    for worker in workers:
        if worker.alive():
            worker.proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout
    for worker in workers:
        try:
            worker.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(10)


def watch_supervisor() -> None:
    """In a worker: exit when the supervisor that started it is gone (killed, say), rather than live on alone."""
    raw = os.environ.get("AOS_DEVHOST__SUPERVISOR_PID")
    if not raw:
        return

    def watch() -> None:
        while os.getppid() == int(raw):
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


class FrontDoor:
    """An ASGI app that forwards each HTTP request to the next live worker, streaming the response back."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._turn = itertools.count()
        self._session: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        import aiohttp

        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # No total timeout: `?wait=` long polls take what they take; workers bound their own requests.
                self._session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _body(self, receive: Any) -> bytes:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionResetError("the client went away")
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _forward(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        import aiohttp

        try:
            body = await self._body(receive)
        except ConnectionResetError:
            return
        path = scope.get("raw_path") or scope["path"].encode()
        target = path.decode("latin-1") + (f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"]
                                           else "")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"host"), None)
        if host:  # absolute URLs a worker builds name the front door
            headers += [("Host", host), ("X-Forwarded-Host", host)]
        started = False
        failed: Worker | None = None
        for _ in range(len(self.workers)):
            worker = self._next()
            if worker is None:
                break
            try:
                async with self._session.request(scope["method"], worker.url + target, data=body or None,
                                                 headers=headers, allow_redirects=False,
                                                 skip_auto_headers=("User-Agent", "Accept-Encoding",
                                                                    "Content-Type")) as response:
                    out = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in _raw_headers(response)
                           if k.lower() not in _HOP_BY_HOP]
                    out.append((b"x-aos-instance", str(worker.index).encode()))
                    await send({"type": "http.response.start", "status": response.status, "headers": out})
                    started = True
                    async for chunk in response.content.iter_any():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                    return
            except aiohttp.ClientConnectorError:  # it refused the connection: nothing was sent, try the next
                continue
            except aiohttp.ClientError as exc:  # it died with the request: the client must not take it as done
                if started:
                    raise  # the client sees the connection cut short
                log.warning("instance %d failed during %s %s: %s", worker.index, scope["method"], target, exc)
                failed = worker
                if scope["method"] in _SAFE_METHODS:
                    continue  # nothing changed by it: the next instance answers instead
                break  # it may have acted on it: only the client may send it again (with its event id)
        if failed is not None:
            response = problem(502, "Bad Gateway", f"instance {failed.index} failed during the request")
        else:
            response = problem(503, "Service Unavailable", "no instance of the app is running")
        await response(scope, receive, send)

    def _next(self) -> Worker | None:
        live = [w for w in self.workers if w.alive()]
        return live[next(self._turn) % len(live)] if live else None


def _raw_headers(response: Any) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]


def banner(settings: HostSettings, workers: list[Worker], function_key_printable: bool) -> str:
    key = (f"{settings.function_key} (generated, kept in {settings.data_dir}/host_keys.json)"
           if function_key_printable else "from AOS_DEVHOST__FUNCTION_KEY")
    lines = [f"AOS local Functions host on {settings.base_url}: {len(workers)} instances over {settings.data_dir}",
             ""]
    lines += [f"        instance {w.index}: pid {w.proc.pid}, {w.url}" for w in workers]
    lines += ["", f"Function key (x-functions-key header or ?code=): {key}",
              f"Host page: {settings.base_url}/admin (with the master key); it lists the instances", ""]
    return "\n".join(lines)


def serve_instances(count: int, settings: HostSettings, *, app: str, log_level: str, guarded: Any) -> int:
    """Run `count` workers behind the front door on `settings.host:settings.port` until interrupted."""
    import uvicorn

    workers = start_workers(count, settings, app=app, log_level=log_level)
    try:
        try:
            wait_until_listening(workers)
        except RuntimeError as exc:
            print(f"aos: {exc}", file=sys.stderr)
            return 1
        print(banner(settings, workers, not os.environ.get("AOS_DEVHOST__FUNCTION_KEY")), flush=True)
        config = uvicorn.Config(FrontDoor(workers), host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=10, http=guarded)
        asyncio.run(uvicorn.Server(config).serve())
        return 0
    finally:
        stop_workers(workers)
