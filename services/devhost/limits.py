"""What keeps one client from taking the host down: bounded bodies, read timeouts and a connection limit.

- `read_body` reads a request body chunk by chunk and stops with 413 as soon as it passes the route's limit
  (chunked or not; a Content-Length over the limit is refused before a byte is read), and with 408 (closing
  the connection) when the whole body has not arrived within the body timeout.
- `guarded_protocol` is uvicorn's HTTP protocol with two more rules: a request's headers must be complete
  within the header timeout (counted from the connection opening or the previous response), else the host
  answers 408 and closes (so the rest of a refused body is discarded for at most that long, never kept);
  and a connection beyond `max_connections` is answered 503 with a problem body.
  uvicorn itself has neither (an idle connection that never finishes its headers stays open forever).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from aos_core.errors import problem_body
from services.devhost.problem import problem
from services.devhost.settings import HostSettings

_TIMEOUT_BODY = json.dumps(problem_body(408, "Request Timeout", "the request headers did not arrive in time")).encode()
_HEADER_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
                            b"connection: close\r\ncontent-length: " + str(len(_TIMEOUT_BODY)).encode() +
                            b"\r\n\r\n" + _TIMEOUT_BODY)


class BodyRejected(Exception):
    """A body the host will not read to the end (too large, too slow, malformed framing)."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail

    def response(self) -> Response:
        answer = problem(self.status, self.title, self.detail)
        if self.status == 408:  # a client this slow does not get to keep the connection
            answer.headers["connection"] = "close"
        return answer


async def read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The whole body, read while counting: BodyRejected (413) past `limit` bytes, (408) after `seconds`."""
    length = request.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise BodyRejected(413, "Payload Too Large", _too_large(limit))
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise BodyRejected(413, "Payload Too Large", _too_large(limit))
                body += chunk
    except TimeoutError:
        raise BodyRejected(408, "Request Timeout", f"the request body did not arrive within {seconds:g} s") from None
    except ClientDisconnect:  # nobody is left to read the answer: end the request quietly, not with a traceback
        raise BodyRejected(400, "Bad Request", "the client closed the connection before its body was complete"
                           ) from None
    return bytes(body)


def _too_large(limit: int) -> str:
    return "this route takes no request body" if limit == 0 else f"request bodies here are limited to {limit} bytes"


async def _full(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # The ASGI app a connection over the limit gets instead of the host: a clear 503, then the connection closes.
    answer = problem(503, "Service Unavailable", "the host has as many open connections as it allows; retry shortly")
    answer.headers.update({"retry-after": "1", "connection": "close"})
    await answer(scope, receive, send)


def guarded_protocol(settings: HostSettings) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (httptools or h11, as `auto` picks) with header timeout and connection limit."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class GuardedHttpProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
        # One timer per connection, re-armed only when it fires early: moving a deadline is a field write, where
        # a timer made and cancelled per request cost every request two timer operations.
        _header_timer: asyncio.TimerHandle | None = None
        _headers_due: float | None = None  # when the pending request's headers must be complete; None: they are

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > settings.max_connections:  # this one is already counted
                self.app = _full
            self._await_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._headers_due is not None and self._in_request():
                self._headers_due = None

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._await_headers()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _in_request(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _await_headers(self) -> None:
            self._headers_due = self.loop.time() + settings.header_timeout
            if self._header_timer is None:
                self._header_timer = self.loop.call_at(self._headers_due, self._check_headers)

        def _check_headers(self) -> None:
            self._header_timer = None
            due = self._headers_due
            if due is None or self.transport.is_closing():
                return  # headers complete: the response's completion arms the next deadline
            if self.loop.time() < due:
                self._header_timer = self.loop.call_at(due, self._check_headers)
            elif not self._in_request():
                self.transport.write(_HEADER_TIMEOUT_RESPONSE)
                self.transport.close()

    return GuardedHttpProtocol
