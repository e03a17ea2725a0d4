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

import azure.functions as func
from starlette.requests import Request
from starlette.responses import Response

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
    """The HTTP functions of the app under `/{routePrefix}/`."""

    def __init__(self, functions: list[FunctionSpec], settings: HostSettings, invoker: Invoker,
                 extra_inputs: Any) -> None:
        self.settings = settings
        self._invoker = invoker
        self._extra_inputs = extra_inputs  # callable(spec, request) -> dict of non-trigger inputs
        self.router = Router()
        self.functions = [f for f in functions if f.trigger_type == "httpTrigger"]
        for spec in self.functions:
            route = spec.trigger.get("route") or spec.name
            self.router.add(route, spec.trigger.get("methods"), spec)

    def url(self, spec: FunctionSpec) -> str:
        prefix = f"/{self.settings.route_prefix}" if self.settings.route_prefix else ""
        return f"{self.settings.base_url}{prefix}/{spec.trigger.get('route') or spec.name}"

    def _authorized(self, spec: FunctionSpec, request: Request) -> bool:
        level = str(spec.trigger.get("authLevel", "FUNCTION")).upper()
        if level == "ANONYMOUS":
            return True
        keys = (self.settings.master_key,) if level == "ADMIN" else (self.settings.function_key,
                                                                     self.settings.master_key)
        return key_matches(presented_key(request), *keys)

    async def handle(self, request: Request, path: str) -> Response:
        """Serve `path` (relative to the route prefix, still percent-encoded)."""
        route, params, allowed = self.router.find(request.method, path)
        if route is None and request.method == "HEAD":  # HEAD works wherever GET does (uvicorn sends no body)
            route, params, allowed = self.router.find("GET", path)
        if route is None:
            if allowed:
                return problem(405, "Method Not Allowed", f"{request.method} is not allowed here",
                               allowed=sorted(allowed))
            return problem(404, "Not Found", f"no function serves {request.url.path}")
        spec: FunctionSpec = route.target
        if not self._authorized(spec, request):
            return problem(401, "Unauthorized", "a valid key is required: send it in the x-functions-key header "
                                                "or the code query parameter")
        limit = 0 if route.methods is not None and route.methods <= _BODYLESS else self.settings.max_body_bytes
        try:
            body = await read_body(request, limit, self.settings.body_timeout)
        except BodyRejected as exc:
            return exc.response()
        http_request = func.HttpRequest(
            method=request.method, url=str(request.url), headers=dict(request.headers),
            params=dict(request.query_params), route_params=params, body=body)
        kwargs = {spec.trigger["name"]: http_request, **self._extra_inputs(spec)}
        try:
            result = await self._invoker.invoke(spec, kwargs)
        except Exception:
            log.exception("function %s raised", spec.name)
            return problem(500, "Internal Server Error", f"function {spec.name} failed; see the host log")
        return to_response(result)


def to_response(result: Any) -> Response:
    """Map what an HTTP function returned to a response, like the worker's `$return` binding."""
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        if not any(k.lower() == "content-type" for k in headers):
            headers["content-type"] = f"{result.mimetype}; charset={result.charset}" if result.charset \
                else result.mimetype
        return Response(result.get_body(), status_code=result.status_code, headers=headers)
    if result is None:
        return Response(status_code=204)
    if isinstance(result, bytes | bytearray):
        return Response(bytes(result), media_type="application/octet-stream")
    if isinstance(result, str):
        return Response(result, media_type="text/plain")
    return Response(json.dumps(result), media_type="application/json")
