"""HTTP triggers: ASGI request -> `azure.functions.HttpRequest`, the function's return -> an HTTP response.

Auth levels are enforced as the Functions host does: `anonymous` needs nothing, `function` the function key
or the master key, `admin` the master key; the key comes in the `x-functions-key` header or the `code` query
parameter. A missing or wrong key is 401 and the function never runs.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.limits import BodyRejected, read_body
from services.devhost.problem import problem
from services.devhost.routes import Router
from services.devhost.settings import HostSettings

log = logging.getLogger("aos.devhost")
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})  # a route that takes only these takes no body


def key_matches(given: str | None, *keys: str) -> bool:
    return given is not None and any(k and hmac.compare_digest(given.encode(), k.encode()) for k in keys)


def presented_key(request: Request, *, basic: bool = False) -> str | None:
    """The key in the x-functions-key header or the `code` query parameter; with `basic`, also the password of
    HTTP Basic credentials (how the Durable client sends the key it finds in its `rpcBaseUrl`)."""
    key = request.headers.get("x-functions-key") or request.query_params.get("code")
    authorization = request.headers.get("authorization", "")
    if key is None and basic and authorization[:6].lower() == "basic ":
        with contextlib.suppress(ValueError):
            key = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")[2] or None
    return key


class HttpTriggers:
    """The HTTP functions of the app under `/{routePrefix}/`, served as a plain ASGI app.

    It is the host's hot path, so it reads the ASGI scope itself and writes the answer with two `send` calls:
    no framework request or response objects, only the `func.HttpRequest` the function takes and what it returns.
    """

    def __init__(self, functions: list[FunctionSpec], settings: HostSettings, invoker: Invoker,
                 extra_inputs: Any) -> None:
        self.settings = settings
        self._invoker = invoker
        self._extra_inputs = extra_inputs  # callable(spec) -> dict of non-trigger inputs
        self._prefix = f"/{settings.route_prefix}" if settings.route_prefix else ""
        self._prefix_lower = self._prefix.lower()
        self.router = Router()
        self.functions = [f for f in functions if f.trigger_type == "httpTrigger"]
        self._keys: dict[str, tuple[str, ...] | None] = {}  # per function: the keys it takes, None for anonymous
        for spec in self.functions:
            route = spec.trigger.get("route") or spec.name
            self.router.add(route, spec.trigger.get("methods"), spec)
            self._keys[spec.name] = _keys(str(spec.trigger.get("authLevel", "FUNCTION")).upper(), settings)

    def url(self, spec: FunctionSpec) -> str:
        return f"{self.settings.base_url}{self._prefix}/{spec.trigger.get('route') or spec.name}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            answer = await self._answer(scope, receive)
        except Exception:  # a fault of the host itself: the same answer the host's other routes give
            log.exception("serving %s %s failed", scope["method"], scope["path"])
            answer = problem(500, "Internal Server Error", "the local host failed; see its log")
        if isinstance(answer, Response):
            await answer(scope, receive, send)
            return
        status, headers, body = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _answer(self, scope: Scope, receive: Receive) -> Response | RawResponse:
        # The path as sent (still percent-encoded), so `{*path}` and `%2F` reach the function as the client wrote them.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        prefix, method = self._prefix_lower, scope["method"]
        if prefix and not (path[:len(prefix)].lower() == prefix and path[len(prefix):len(prefix) + 1] in ("", "/")):
            return problem(404, "Not Found", f"no function serves {scope['path']}")
        route, params, allowed = self.router.find(method, path[len(prefix):])
        if route is None and method == "HEAD":  # HEAD works wherever GET does (uvicorn sends no body)
            route, params, allowed = self.router.find("GET", path[len(prefix):])
        if route is None:
            if allowed:
                return problem(405, "Method Not Allowed", f"{method} is not allowed here", allowed=sorted(allowed))
            return problem(404, "Not Found", f"no function serves {scope['path']}")
        spec: FunctionSpec = route.target
        # The first of repeated headers, the last of repeated query parameters: what Starlette's mappings give.
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        query_string = scope.get("query_string", b"").decode("latin-1")
        query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        keys = self._keys[spec.name]
        if keys is not None and not key_matches(headers.get("x-functions-key") or query.get("code"), *keys):
            return problem(401, "Unauthorized", "a valid key is required: send it in the x-functions-key header "
                                                "or the code query parameter")
        limit = 0 if route.methods is not None and route.methods <= _BODYLESS else self.settings.max_body_bytes
        if limit == 0 and "content-length" not in headers and "transfer-encoding" not in headers:
            body = b""  # no body is coming: nothing to wait for
        else:
            try:
                body = await read_body(Request(scope, receive), limit, self.settings.body_timeout)
            except BodyRejected as exc:
                return exc.response()
        http_request = func.HttpRequest(method=method, url=_url(scope, path, headers, query_string), headers=headers,
                                        params=query, route_params=params, body=body)
        kwargs = {spec.trigger["name"]: http_request, **self._extra_inputs(spec)}
        try:
            result = await self._invoker.invoke(spec, kwargs)
        except Exception:
            log.exception("function %s raised", spec.name)
            return problem(500, "Internal Server Error", f"function {spec.name} failed; see the host log")
        return to_response(result)


RawResponse = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, ASGI headers, body


def _keys(level: str, settings: HostSettings) -> tuple[str, ...] | None:
    if level == "ANONYMOUS":
        return None
    return (settings.master_key,) if level == "ADMIN" else (settings.function_key, settings.master_key)


def _url(scope: Scope, path: str, headers: dict[str, str], query_string: str) -> str:
    """The URL the client asked for (its path as sent), as `HttpRequest.url` carries it."""
    host = headers.get("host")
    if host is None:
        server_host, port = scope.get("server") or ("localhost", 80)
        host = f"{server_host}:{port}"
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    return f"{url}?{query_string}" if query_string else url


def to_response(result: Any) -> RawResponse:
    """Map what an HTTP function returned to a response, like the worker's `$return` binding."""
    if isinstance(result, func.HttpResponse):
        body, status = result.get_body(), result.status_code
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in result.headers.items()
                   if k.lower() != "content-length"]
        if not any(k == b"content-type" for k, _ in headers):
            mimetype = f"{result.mimetype}; charset={result.charset}" if result.charset else result.mimetype
            headers.append((b"content-type", mimetype.encode("latin-1")))
    elif result is None:
        status, body, headers = 204, b"", []
    elif isinstance(result, bytes | bytearray):
        status, body, headers = 200, bytes(result), [(b"content-type", b"application/octet-stream")]
    elif isinstance(result, str):
        status, body, headers = 200, result.encode(), [(b"content-type", b"text/plain; charset=utf-8")]
    else:
        status, body, headers = 200, json.dumps(result).encode(), [(b"content-type", b"application/json")]
    if status >= 200 and status not in (204, 304):
        headers.append((b"content-length", str(len(body)).encode()))
    return status, headers, body
