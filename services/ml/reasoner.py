"""The Reasoner port and the local, deterministic, rule-based implementation that is the default.

A Reasoner turns a prompt (plus the agent's adapter and sampling parameters) into text, and continues a chat
with tools (services.ml.chat): messages and tool definitions in, an answer or tool calls out. In production it is
an Azure ML online endpoint serving the base model with the agent's LoRA adapter, or any OpenAI-compatible
chat endpoint (services.ml.endpoints). Locally, `RuleBasedReasoner` answers without any model: the same
prompt always gets the same answer, so agents, caches and tests behave the same on every machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aos_core.errors import AOSError

if TYPE_CHECKING:
    from services.ml.chat import ChatRequest, ChatResult, ToolRule

_PARAMETERS = {"temperature", "top_p", "max_tokens", "stop", "seed"}


class InvalidRequestError(AOSError, ValueError):
    """A reasoning request is malformed (empty prompt, unknown parameter); nothing was sent."""


@dataclass(frozen=True, slots=True)
class ReasoningRequest:
    """What an agent asks: `adapter` is the resolved `name@version` (or None for the base model)."""

    prompt: str
    adapter: str | None = None
    system: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequestError("prompt must be a non-empty string")
        unknown = set(self.parameters) - _PARAMETERS
        if unknown:
            raise InvalidRequestError(f"unknown parameters {sorted(unknown)}; allowed: {sorted(_PARAMETERS)}")
        try:
            json.dumps(self.parameters, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRequestError(f"parameters must be JSON values: {exc}") from None

    @property
    def adapter_name(self) -> str | None:
        return None if self.adapter is None else self.adapter.partition("@")[0]

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "adapter": self.adapter, "system": self.system, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class ReasoningResult:
    """The answer, who produced it, and whether it came from the response cache."""

    text: str
    adapter: str | None
    model: str
    cached: bool = False
    usage: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "adapter": self.adapter, "model": self.model, "cached": self.cached,
                "usage": self.usage}


@runtime_checkable
class Reasoner(Protocol):
    """Answers prompts and chats. Implementations raise InvalidRequestError for bad input, typed errors for failures."""

    async def reason(self, request: ReasoningRequest) -> ReasoningResult:
        """The answer to `request`."""
        ...

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The model's next turn in `request.messages`: text, or calls of the tools in `request.tools`."""
        ...

    async def close(self) -> None: ...


# --- the local default -------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z][a-z'-]+")
_POSITIVE = frozenset("growth gain profit increase improve opportunity approve strong efficient save win".split())
_NEGATIVE = frozenset("risk loss decline decrease cost breach delay fail weak reject fraud churn".split())


@dataclass(frozen=True, slots=True)
class Rule:
    """When `pattern` (a regex, case-insensitive) matches the prompt, answer `template`.

    The template may use the pattern's named groups and `{adapter}`.
    """

    pattern: str
    template: str

    def answer(self, prompt: str, adapter: str) -> str | None:
        match = re.search(self.pattern, prompt, re.IGNORECASE)
        if match is None:
            return None
        return self.template.format(adapter=adapter, **{k: v or "" for k, v in match.groupdict().items()})


class RuleBasedReasoner:
    """Deterministic, rule-based reasoning with no model: the local default, named so nobody mistakes it for one.

    The first matching `Rule` answers; otherwise a keyword heuristic weighs positive against negative terms
    and recommends proceed, hold or review, quoting the terms it counted. Same input, same output, always.
    In a chat, each `ToolRule` that matches the user text calls its tool (when offered and not yet called with
    those arguments); once no rule asks for more, it answers the user text as `reason` would, naming the
    tool results it read.
    """

    model = "rule-based"

    def __init__(self, rules: list[Rule] | None = None, tool_rules: list[ToolRule] | None = None) -> None:
        self.rules = list(rules or ())
        self.tool_rules = list(tool_rules or ())

    def answer(self, request: ReasoningRequest) -> ReasoningResult:
        """The synchronous answer (the local scoring server calls this from its threads)."""
        adapter = request.adapter or "base"
        for rule in self.rules:
            text = rule.answer(request.prompt, adapter)
            if text is not None:
                return self._result(request, text)
        words = _WORD.findall(request.prompt.lower())
        good = sorted({w for w in words if w in _POSITIVE})
        bad = sorted({w for w in words if w in _NEGATIVE})
        score = sum(w in _POSITIVE for w in words) - sum(w in _NEGATIVE for w in words)
        verdict = "proceed" if score > 0 else "hold" if score < 0 else "review"
        digest = hashlib.sha256(request.prompt.encode("utf-8")).hexdigest()[:8]
        text = (f"[{adapter}] recommendation: {verdict} (score {score:+d}; for: {', '.join(good) or 'none'}; "
                f"against: {', '.join(bad) or 'none'}; ref {digest})")
        max_tokens = request.parameters.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0:
            text = " ".join(text.split(" ")[:max_tokens])
        return self._result(request, text)

    def _result(self, request: ReasoningRequest, text: str) -> ReasoningResult:
        usage = {"prompt_tokens": len(request.prompt.split()), "completion_tokens": len(text.split())}
        return ReasoningResult(text=text, adapter=request.adapter, model=self.model, usage=usage)

    async def reason(self, request: ReasoningRequest) -> ReasoningResult:
        """The rule-based answer to `request`."""
        return self.answer(request)

    def chat_answer(self, request: ChatRequest) -> ChatResult:
        """The synchronous chat turn (the local scoring server calls this from its threads)."""
        from services.ml.chat import ChatMessage, ChatResult

        user = "\n".join(m.content for m in request.messages if m.role == "user")
        system = "\n".join(m.content for m in request.messages if m.role == "system")
        called = {_call_key(c.name, c.arguments) for m in request.messages for c in m.tool_calls}
        offered = {t.name for t in request.tools}
        calls = {}
        for rule in self.tool_rules:
            call = rule.call(user, offered)
            if call is not None and _call_key(call.name, call.arguments) not in called:
                calls.setdefault(call.id, call)
        if calls:
            message = ChatMessage("assistant", "", tuple(calls.values()))
        else:
            parameters = {k: v for k, v in request.parameters.items() if k in _PARAMETERS}
            text = self.answer(ReasoningRequest(prompt=user, adapter=request.adapter, system=system,
                                                parameters=parameters)).text
            read = [f"{m.name or m.tool_call_id}: {clip(m.content, 80)}" for m in request.messages if m.role == "tool"]
            if read:
                text += f" (consulted {'; '.join(read)})"
            message = ChatMessage("assistant", text)
        spoken = " ".join(m.content for m in request.messages)
        answer = message.content or json.dumps([c.to_dict() for c in message.tool_calls])
        return ChatResult(message=message, model=self.model, adapter=request.adapter,
                          usage={"prompt_tokens": len(spoken.split()), "completion_tokens": len(answer.split())},
                          finish_reason="tool_calls" if message.tool_calls else "stop")

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The rule-based chat turn for `request`."""
        return self.chat_answer(request)

    async def close(self) -> None:
        return None


def _call_key(name: str, arguments: dict[str, Any]) -> str:
    return json.dumps([name, arguments], sort_keys=True)


def clip(text: str, limit: int = 200) -> str:
    """`text` on one line, cut at `limit` characters (for error details and summaries)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
