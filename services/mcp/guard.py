"""Checks `/api/mcp` makes on the raw HTTP request before the MCP transport sees it.

- **Origin** (MCP transports spec, 2025-06-18 and later: the server MUST validate `Origin`): a request that
  carries an `Origin` outside the allow-list is refused with 403, so a web page a user visits cannot drive the
  OS through the user's browser (DNS rebinding). Allowed: loopback, the app's own host name (`WEBSITE_HOSTNAME`,
  set on Azure), and `mcp.allowed_origins` (custom domains go there). No `Origin` (server-to-server clients,
  the mcp package's client) passes unchanged.
- **Envelope**: one JSON-RPC request, notification or response object per POST. A batch (removed in
  2025-06-18), a request with `id: null` and anything that is not JSON-RPC 2.0 get `-32600 Invalid Request`
  with a one-line message, instead of the transport's validation dump or a silent 202.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

INVALID_REQUEST = -32600
PARSE_ERROR = -32700
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_OWN_HOST = "WEBSITE_HOSTNAME"  # the app's default host name, set by App Service / Functions on Azure


class OriginPolicy:
    """Which browser origins may call the endpoint: loopback, the app's host names, and configured origins."""

    def __init__(self, allowed: Iterable[str] = (), own_hosts: Iterable[str] | None = None) -> None:
        self._exact: set[str] = set()
        self._any_port: set[str] = set()  # "scheme://host" of entries written "scheme://host:*"
        for origin in allowed:
            origin = origin.strip().rstrip("/").lower()
            if origin.endswith(":*"):
                self._any_port.add(origin[:-2])
            elif origin:
                self._exact.add(origin)
        hosts = own_hosts if own_hosts is not None else _own_hosts()
        self._hosts = _LOOPBACK | {h.strip().lower() for h in hosts if h.strip()}

    def allows(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser: nothing to protect against
        origin = origin.strip().rstrip("/").lower()
        if origin in self._exact:
            return True
        parts = urlsplit(origin)
        try:
            host, port = parts.hostname, parts.port
        except ValueError:  # a port that is not a number
            return False
        if parts.scheme not in ("http", "https") or not host or parts.path or parts.query:
            return False  # "null" (sandboxed pages, file://) and anything that is not an origin
        if f"{parts.scheme}://{host}" in self._any_port or f"{parts.scheme}://[{host}]" in self._any_port:
            return True
        return host in self._hosts and (port is None or host in _LOOPBACK or f"{host}:{port}" in self._hosts)


def _own_hosts() -> list[str]:
    return [h for h in os.environ.get(_OWN_HOST, "").split(",") if h]


def envelope_error(body: bytes) -> tuple[int, dict[str, Any]] | None:
    """`(HTTP status, JSON-RPC error)` if `body` is not one well-formed JSON-RPC 2.0 message, else None."""
    try:
        message = json.loads(body)
    except (ValueError, RecursionError):
        return 400, _error(PARSE_ERROR, "Parse error: the body is not JSON")
    if isinstance(message, list):
        return 400, _error(INVALID_REQUEST, "Invalid Request: batches are not supported; send one message per POST")
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return 400, _error(INVALID_REQUEST, 'Invalid Request: the body must be one JSON-RPC object with "jsonrpc": '
                           '"2.0"')
    has_id = "id" in message
    if has_id and (message["id"] is None or isinstance(message["id"], bool)
                   or not isinstance(message["id"], str | int)):
        return 400, _error(INVALID_REQUEST, "Invalid Request: id must be a string or an integer")
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return 400, _error(INVALID_REQUEST, "Invalid Request: method must be a non-empty string", message)
        if "params" in message and not isinstance(message["params"], dict):
            return 400, _error(INVALID_REQUEST, "Invalid Request: params must be an object", message)
        return None
    if has_id and ("result" in message) != ("error" in message):
        return None  # a response to a server request: the transport acknowledges it
    return 400, _error(INVALID_REQUEST, "Invalid Request: neither a request, a notification nor a response",
                       message)


def _error(code: int, message: str, request: dict[str, Any] | None = None) -> dict[str, Any]:
    request_id = request.get("id") if request is not None else None
    valid_id = isinstance(request_id, str | int) and not isinstance(request_id, bool)
    return {"jsonrpc": "2.0", "id": request_id if valid_id else None, "error": {"code": code, "message": message}}
