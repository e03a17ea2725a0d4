"""A stand-in for the Durable extension's webhook endpoint that records entity signals (test boundary only).

The real azure-functions-durable client POSTs `{rpcBaseUrl}entities/{name}/{key}?op=...` with the operation
input as its body; this server records those calls and answers 202 like the extension does, so tests can
feed the recorded signals to the entity function through the Durable JSON batch protocol.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Signal:
    entity: str
    key: str
    operation: str
    input: Any


class SignalRecorder:
    def __init__(self, *, fail: bool = False) -> None:
        self.signals: list[Signal] = []
        self.fail = fail
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")  # durabletask/entities/{name}/{key}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if recorder.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                op = parse_qs(url.query).get("op", [""])[0]
                # The SDK JSON-encodes the input, then posts that string as JSON: the body is the serialized
                # input the extension hands the entity, decoded twice by DurableEntityContext.get_input().
                value = json.loads(json.loads(body)) if body else None
                recorder.signals.append(Signal(parts[-2], parts[-1], op, value))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def rpc_base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/durabletask/"

    def client_binding(self) -> str:
        """The JSON a `durableClient` binding hands the function, pointing at this server."""
        return json.dumps({"taskHubName": "aoshub", "creationUrls": {}, "managementUrls": {}, "baseUrl": "",
                           "requiredQueryStringParameters": "", "rpcBaseUrl": self.rpc_base_url})

    def take(self) -> list[Signal]:
        signals, self.signals = self.signals, []
        return signals

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def entity_batch(key: str, state: Any, operations: list[tuple[str, Any]], *, exists: bool = True) -> str:
    """The Durable batch context the host passes an entity function, as JSON."""
    return json.dumps({"self": {"name": "agent", "key": key}, "exists": exists,
                       "state": None if state is None else json.dumps(state),
                       "batch": [{"name": op, "signal": True, "input": json.dumps(json.dumps(value))}
                                 for op, value in operations]})
