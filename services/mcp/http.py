"""`/api/mcp`: the OS MCP server over streamable HTTP, stateless with JSON responses.

Stateless JSON is what works behind an HTTP-triggered function: every POST carries one JSON-RPC message and
gets one JSON answer; no session lives between requests, so any worker can answer any request.

Two ways in:
- `McpHttpApp(aos)` is an ASGI app (mount it on uvicorn, or any ASGI server); it runs the MCP session manager
  in its lifespan.
- `await handle_mcp_http(aos, method, path, headers, body, principal)` runs one plain request through the same
  app in-process and returns `(status, headers, body)`: what an HTTP-triggered function calls. Call it on the
  kernel's loop (`aos_core.runtime.with_aos`); `close_mcp_http(aos)` stops it at shutdown.

The caller is established before MCP sees the request: the Functions host checked the function key; the
principal (App Service authentication) or the key's roles decide what the tools allow (`services.mcp.principal`).
Before that, a browser `Origin` outside the allow-list is refused and the JSON-RPC envelope is checked
(`services.mcp.guard`). Every request ends when its client disconnects, or after `mcp.max_request_seconds` with
a JSON-RPC error, whatever a tool waits for.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import Message, Receive, Scope, Send

from aos_core.auth import AuthError, Caller
from aos_core.errors import problem_body
from services.mcp.guard import OriginPolicy, envelope_error
from services.mcp.os_server import create_os_mcp_server
from services.mcp.principal import SCOPE_KEY, AccessDeniedError, McpPrincipal, principal_from_headers

if TYPE_CHECKING:
    from aos_core.kernel import AgentOperatingSystem

CALLER_KEY = "aos.caller"  # a Caller (or McpPrincipal) the host established, passed in the scope
REQUEST_TIMEOUT = -32001  # JSON-RPC server error: the request ran past mcp.max_request_seconds


class McpHttpApp:
    """The ASGI app serving the OS MCP server. `keys`: function keys to require (when no host checks them)."""

    def __init__(self, aos: AgentOperatingSystem, *, server: MCPServer | None = None,
                 keys: Collection[str] | None = None) -> None:
        self.aos = aos
        self.server = server or create_os_mcp_server(aos)
        self._keys = [k.encode() for k in keys] if keys else None
        self.origins = OriginPolicy(aos.config.mcp.allowed_origins)
        self.max_seconds = aos.config.mcp.max_request_seconds
        self._max_body = aos.config.api.max_body_bytes
        # Builds the session manager; routing is ours (any path the host sends here), so its Starlette app is
        # not used. Its Host check stays off (the Functions front end sets Host to custom domains); the Origin
        # check, the part that stops DNS rebinding, is ours (`OriginPolicy`), with the app's settings.
        self.server.streamable_http_app(
            stateless_http=True, json_response=True, max_request_body_size=self._max_body,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        self.manager = self.server.session_manager

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise ValueError(f"McpHttpApp serves HTTP, not {scope['type']!r}")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if not self.origins.allows(headers.get("origin")):
            await _problem(send, 403, "Forbidden", f"origin {headers['origin']!r} may not call this endpoint; "
                           "allow it in mcp.allowed_origins")
            return
        try:
            principal = self._authenticate(scope, headers)
        except AuthError as exc:
            await _problem(send, 401, "Unauthorized", str(exc))
            return
        except AccessDeniedError as exc:
            await _problem(send, 403, "Forbidden", str(exc))
            return
        except ValueError as exc:  # a malformed agent id in a header or claim
            await _problem(send, 400, "Invalid request", str(exc))
            return
        scope = {**scope, SCOPE_KEY: principal}
        if scope["method"] != "POST":
            await self.manager.handle_request(scope, receive, send)
            return
        body = await _read_body(receive, self._max_body)
        if body is None:
            await _problem(send, 413, "Body too large", f"the body is over {self._max_body} bytes")
            return
        refused = envelope_error(body)
        if refused is not None:
            await _json(send, *refused)
            return
        await self._bounded(scope, body, receive, send)

    async def _bounded(self, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Serve one POST until it is answered, its client disconnects, or `max_seconds` pass."""
        disconnected = anyio.Event()
        body_sent = False
        started = False

        async def replay() -> Message:  # the transport reads the body, then may watch for a disconnect
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async with anyio.create_task_group() as tasks:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected.set()
                tasks.cancel_scope.cancel()  # nobody is listening: stop the tool, whatever it waits for

            tasks.start_soon(watch)
            with anyio.move_on_after(self.max_seconds) as limit:
                await self.manager.handle_request(scope, replay, tracked)
            tasks.cancel_scope.cancel()
        if limit.cancelled_caught and not started and not disconnected.is_set():
            request_id = json.loads(body).get("id")
            await _json(send, 200, {"jsonrpc": "2.0", "id": request_id, "error": {
                "code": REQUEST_TIMEOUT, "message": f"Request timed out after {self.max_seconds:g} s "
                                                   "(mcp.max_request_seconds)"}})

    def _authenticate(self, scope: Scope, headers: Mapping[str, str]) -> McpPrincipal:
        if self._keys is not None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            given = (headers.get("x-functions-key") or (query.get("code") or [""])[0]).encode()
            if not any(hmac.compare_digest(given, key) for key in self._keys):
                raise AuthError("a function key is required (x-functions-key header or ?code=)")
        established = scope.get(CALLER_KEY)
        if isinstance(established, McpPrincipal):
            return established
        caller = established if isinstance(established, Caller) else None
        return principal_from_headers(headers, self.aos.config.auth, caller)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        try:
            async with self.manager.run():
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})


# --- one plain request in, one plain response out ------------------------------------------------------


class _Endpoint:
    """An McpHttpApp whose session manager runs in a background task on the kernel's loop."""

    def __init__(self, aos: AgentOperatingSystem) -> None:
        self.app = McpHttpApp(aos)
        self.loop = asyncio.get_running_loop()
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        async with self.app.manager.run():
            self._started.set()
            await self._stop.wait()

    async def ready(self) -> None:
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._started.is_set():
            started.cancel()
            self._task.result()  # raises why the manager did not start

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(self._task, return_exceptions=True)


_RESOURCE = "mcp.http_endpoint"  # the kernel keeps its endpoint under this name (aos.resources)


async def _endpoint(aos: AgentOperatingSystem) -> _Endpoint:
    endpoint: _Endpoint | None = aos.resources.get(_RESOURCE)
    if endpoint is not None and endpoint.loop is asyncio.get_running_loop():
        return endpoint
    endpoint = aos.resources[_RESOURCE] = _Endpoint(aos)
    aos.on_shutdown(lambda: close_mcp_http(aos))
    await endpoint.ready()
    return endpoint


async def close_mcp_http(aos: AgentOperatingSystem) -> None:
    """Stop the in-process endpoint of `aos` (its shutdown does this); a no-op if none runs."""
    endpoint = aos.resources.pop(_RESOURCE, None)
    if endpoint is not None:
        await endpoint.close()


async def handle_mcp_http(aos: AgentOperatingSystem, method: str, path: str, headers: Mapping[str, str],
                          body: bytes, principal: Caller | McpPrincipal | None = None
                          ) -> tuple[int, dict[str, str], bytes]:
    """Serve one `/api/mcp` request in-process: `(status, headers, body)` of the MCP streamable-HTTP answer.

    `principal`: the caller the host established (e.g. `aos_core.auth.identify`); None identifies it from
    `headers` the same way. `path` may carry a query string. Never raises for bad input: that is a 4xx.
    """
    endpoint = await _endpoint(aos)
    raw_path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method.upper(),
        "scheme": "https", "path": raw_path, "raw_path": raw_path.encode(), "query_string": query.encode(),
        "root_path": "", "server": ("localhost", 443), "client": ("127.0.0.1", 0),
        "headers": [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items()],
    }
    if principal is not None:
        scope[CALLER_KEY] = principal
    status, out_headers, chunks = 500, {}, []
    finished = asyncio.Event()
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # only asked again once the answer is out (or to watch for a disconnect)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                out_headers[name.decode("latin-1")] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                finished.set()

    try:
        await endpoint.app(scope, receive, send)
    finally:
        finished.set()
    return status, out_headers, b"".join(chunks)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it grows past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left mid-body: what came is all there is
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _problem(send: Send, status: int, title: str, detail: str) -> None:
    await _json(send, status, problem_body(status, title, detail), "application/problem+json")


async def _json(send: Send, status: int, value: dict[str, Any], media: str = "application/json") -> None:
    body = json.dumps(value).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
