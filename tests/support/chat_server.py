"""A scripted OpenAI-compatible chat server: the project's own stand-in for a model service (no model weights
can be fetched here). It is the real local scoring server (`services.ml.local_server`, a real HTTP server on
127.0.0.1) with an `intercept` that answers `/v1/chat/completions` from a script instead of the rule-based
reasoner: turn N of the script answers the request whose conversation holds N assistant messages, so a
conversation resumed after a crash gets the same next turn. A turn can be held until the test releases it.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from services.ml.chat import ChatMessage, ChatResult, ToolCall, openai_answer
from services.ml.local_server import LocalScoringServer


class ScriptedChat:
    """`turns`: each `{"content": text}` or `{"tool_calls": [(name, arguments), ...]}` (optionally `usage`)."""

    def __init__(self, turns: list[dict[str, Any]], *, model: str = "scripted-model") -> None:
        self.turns, self.model = turns, model
        self.arrived = [threading.Event() for _ in turns]  # turn N was asked for (at least once)
        self.asked = [0 for _ in turns]
        self.held: dict[int, threading.Event] = {}
        self._changed = threading.Condition()

    def hold(self, turn: int) -> threading.Event:
        """Make turn `turn` wait until the returned event is set."""
        self.held[turn] = threading.Event()
        return self.held[turn]

    def wait_asked(self, turn: int, times: int = 1, timeout: float = 60.0) -> bool:
        """Block until turn `turn` was asked for `times` times (True), or `timeout` passed (False)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.asked[turn] >= times, timeout)

    def __call__(self, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]] | None:
        if path != "/v1/chat/completions":
            return None
        turn = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if turn >= len(self.turns):
            return 500, {"error": f"the script has no turn {turn}"}, {}
        with self._changed:
            self.asked[turn] += 1
            self._changed.notify_all()
        self.arrived[turn].set()
        gate = self.held.get(turn)
        if gate is not None:
            gate.wait(120)
        spec = self.turns[turn]
        calls = tuple(ToolCall(id=f"call_{turn}_{n}", name=name, arguments=arguments)
                      for n, (name, arguments) in enumerate(spec.get("tool_calls", ())))
        spoken = json.dumps(body["messages"])
        usage = spec.get("usage") or {"prompt_tokens": len(spoken.split()), "completion_tokens": 7}
        result = ChatResult(ChatMessage("assistant", spec.get("content", ""), calls), model=self.model, usage=usage,
                            finish_reason="tool_calls" if calls else "stop")
        return 200, openai_answer(result, completion_id=f"chatcmpl-{turn}"), {}


def chat_server(turns: list[dict[str, Any]]) -> tuple[LocalScoringServer, ScriptedChat]:
    """A started server answering from `turns` (stop it with `server.stop()`, or use it in a `with`)."""
    server = LocalScoringServer()
    script = ScriptedChat(turns)
    server.intercept = script
    return server.start(), script
