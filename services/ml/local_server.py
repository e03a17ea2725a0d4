"""A local stand-in for a scoring endpoint: `RuleBasedReasoner` served over real HTTP on 127.0.0.1.

It speaks both wire formats the remote clients use: the Azure ML scoring contract (`POST /score`) and
OpenAI chat completions (`POST /v1/chat/completions`), with the same key check, so `ml.reasoner=azureml`
or `openai` can be exercised end to end on a laptop (`aos ml serve-local`), and the benchmark and tests
measure a real network round trip. `intercept` lets a caller answer a request differently (errors, 429,
a slow answer) before the reasoner does.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.ml.chat import openai_answer, request_from_openai
from services.ml.reasoner import InvalidRequestError, ReasoningRequest, RuleBasedReasoner

# (path, parsed body, headers) -> None to answer normally, or (status, body, extra headers)
Intercept = Callable[[str, Any, dict[str, str]], "tuple[int, Any, dict[str, str]] | None"]


class LocalScoringServer:
    """`with LocalScoringServer() as server:` serves on `server.url` until the block ends."""

    def __init__(self, reasoner: RuleBasedReasoner | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None) -> None:
        self.reasoner = reasoner or RuleBasedReasoner()
        self.api_key = api_key
        self.intercept: Intercept | None = None
        self.requests: deque[dict[str, Any]] = deque(maxlen=1000)  # the latest arrivals: path, headers (no key), body
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> LocalScoringServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="aos-scoring", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self) -> None:
        """Block until the server stops (`aos ml serve-local` waits here for Ctrl-C)."""
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LocalScoringServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- answering ----------------------------------------------------------------------------------

    def answer(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            safe = {k: v for k, v in headers.items() if k not in ("authorization", "api-key")}
            self.requests.append({"path": path, "body": body, "headers": safe})
        if self.intercept is not None:
            override = self.intercept(path, body, headers)
            if override is not None:
                return override
        if self.api_key is not None:
            given = headers.get("api-key") or headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.api_key:
                return 401, {"error": "invalid key"}, {}
        try:
            if path == "/score":
                return 200, self._score(body), {}
            if path == "/v1/chat/completions":
                return 200, self._chat(body), {}
        except (InvalidRequestError, KeyError, TypeError, AttributeError) as exc:
            return 400, {"error": f"bad request: {exc}"}, {}
        return 404, {"error": f"no route {path}"}, {}

    def _score(self, body: Any) -> dict[str, Any]:
        data = body["input_data"]
        request = ReasoningRequest(prompt=data["prompt"], adapter=data.get("adapter"), system=data.get("system", ""),
                                   parameters=data.get("parameters") or {})
        result = self.reasoner.answer(request)
        return {"output": result.text, "usage": result.usage}

    def _chat(self, body: Any) -> dict[str, Any]:
        if body.get("tools") or any(m.get("role") == "tool" for m in body["messages"]):
            return openai_answer(self.reasoner.chat_answer(request_from_openai(body)))
        messages = body["messages"]
        prompt = "\n".join(m["content"] for m in messages if m.get("role") == "user")
        system = "\n".join(m["content"] for m in messages if m.get("role") == "system")
        parameters = {k: v for k, v in body.items() if k in ("temperature", "top_p", "max_tokens", "stop", "seed")}
        request = ReasoningRequest(prompt=prompt, adapter=body.get("model"), system=system, parameters=parameters)
        result = self.reasoner.answer(request)
        usage = {**result.usage, "total_tokens": sum(result.usage.values())}
        return {"id": "chatcmpl-local", "object": "chat.completion", "model": body.get("model", "rule-based"),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": result.text}}], "usage": usage}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like a real endpoint behind a load balancer
            # Headers and body leave in one segment (buffered, flushed after each request), without Nagle:
            # otherwise a delayed ACK adds ~40 ms to every answer on loopback.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    self._send(400, {"error": "body is not JSON"}, {})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._send(*server.answer(self.path, body, headers))

            def do_GET(self) -> None:
                if self.path == "/health":
                    self._send(200, {"status": "ok", "model": server.reasoner.model}, {})
                else:
                    self._send(404, {"error": f"no route {self.path}"}, {})

            def _send(self, status: int, body: Any, extra: dict[str, str]) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout): fine
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet: requests are in server.requests
                return None

        return Handler
