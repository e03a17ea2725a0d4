"""Chat with tools through the Reasoner port: messages and tool definitions in, an answer or tool calls out.

The shapes follow OpenAI chat completions, which Azure OpenAI, vLLM, llama.cpp and most model servers speak:
a conversation of `system`, `user`, `assistant` (text and/or tool calls) and `tool` (a tool's result, naming
the call it answers) messages, and tools offered as JSON Schema functions. `openai_body` and `parse_openai`
are the one translation to and from that wire format; every remote reasoner uses them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from services.ml.reasoner import InvalidRequestError

Role = Literal["system", "user", "assistant", "tool"]
_ROLES = frozenset({"system", "user", "assistant", "tool"})
_PARAMETERS = frozenset({"temperature", "top_p", "max_tokens", "stop", "seed", "tool_choice"})
# OpenAI's rule for function names; MCP names such as `github/create_issue` are mapped to it by the toolbox.
TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for `name(arguments)`; `id` pairs the call with the tool message that answers it."""

    id: str
    name: str
    arguments: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(id=str(data["id"]), name=str(data["name"]), arguments=dict(data.get("arguments") or {}))


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message. An assistant message may carry `tool_calls`; a tool message names its `tool_call_id`."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None  # the tool's name, on a tool message

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise InvalidRequestError(f"message role must be one of {sorted(_ROLES)}, not {self.role!r}")
        if not isinstance(self.content, str):
            raise InvalidRequestError("message content must be a string")
        if self.role == "tool" and not self.tool_call_id:
            raise InvalidRequestError("a tool message must name the tool_call_id it answers")
        if self.tool_calls and self.role != "assistant":
            raise InvalidRequestError("only an assistant message carries tool_calls")

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            data["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatMessage:
        return cls(role=data["role"], content=data.get("content") or "",
                   tool_calls=tuple(ToolCall.from_dict(c) for c in data.get("tool_calls") or ()),
                   tool_call_id=data.get("tool_call_id"), name=data.get("name"))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its name, what it does, and its arguments as a JSON Schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not TOOL_NAME.match(self.name):
            raise InvalidRequestError(f"tool name {self.name!r} must match {TOOL_NAME.pattern}")
        if self.parameters.get("type") != "object":
            raise InvalidRequestError(f"tool {self.name}: parameters must be a JSON Schema of type object")


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A conversation to continue, the tools the model may call, the agent's adapter and sampling parameters."""

    messages: tuple[ChatMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    adapter: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.messages or not any(m.role == "user" for m in self.messages):
            raise InvalidRequestError("a chat needs at least one user message")
        unknown = set(self.parameters) - _PARAMETERS
        if unknown:
            raise InvalidRequestError(f"unknown parameters {sorted(unknown)}; allowed: {sorted(_PARAMETERS)}")
        names = [t.name for t in self.tools]
        if len(names) != len(set(names)):
            raise InvalidRequestError("tool names must be unique")
        asked = {c.id for m in self.messages for c in m.tool_calls}
        for message in self.messages:
            if message.role == "tool" and message.tool_call_id not in asked:
                raise InvalidRequestError(f"tool message answers unknown call {message.tool_call_id!r}")

    @property
    def adapter_name(self) -> str | None:
        return None if self.adapter is None else self.adapter.partition("@")[0]


@dataclass(frozen=True, slots=True)
class ChatResult:
    """The model's turn: an assistant message (text, tool calls or both), who answered, and the tokens used."""

    message: ChatMessage
    model: str
    adapter: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str = "stop"

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return self.message.tool_calls

    @property
    def text(self) -> str:
        return self.message.content

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message.to_dict(), "model": self.model, "adapter": self.adapter,
                "usage": self.usage, "finish_reason": self.finish_reason}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatResult:
        return cls(message=ChatMessage.from_dict(data["message"]), model=str(data["model"]),
                   adapter=data.get("adapter"), usage=dict(data.get("usage") or {}),
                   finish_reason=str(data.get("finish_reason") or "stop"))


# --- the OpenAI wire format --------------------------------------------------------------------------


def openai_body(request: ChatRequest, model: str) -> dict[str, Any]:
    """The `/chat/completions` request body for `request`."""
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.tool_calls:
            item["content"] = m.content or None
            item["tool_calls"] = [{"id": c.id, "type": "function",
                                   "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                  for c in m.tool_calls]
        if m.tool_call_id is not None:
            item["tool_call_id"] = m.tool_call_id
        messages.append(item)
    body: dict[str, Any] = {"model": model, "messages": messages, **request.parameters}
    if request.tools:
        body["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.parameters}} for t in request.tools]
    return body


def parse_openai(data: Any, *, adapter: str | None, default_model: str) -> ChatResult:
    """A ChatResult from a `/chat/completions` answer; ValueError naming what is missing."""
    try:
        choice = data["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("answer has no choices[0].message") from None
    content = message.get("content") or ""
    if not isinstance(content, str):
        raise ValueError("choices[0].message.content is not text")
    calls = []
    for raw in message.get("tool_calls") or ():
        try:
            function = raw["function"]
            arguments = json.loads(function.get("arguments") or "{}")
            calls.append(ToolCall(id=str(raw["id"]), name=str(function["name"]), arguments=arguments))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"tool call is malformed: {str(raw)[:200]}") from None
        if not isinstance(arguments, dict):
            raise ValueError(f"tool call {raw.get('id')}: arguments are not a JSON object")
    usage = data.get("usage") or {}
    return ChatResult(message=ChatMessage("assistant", content, tuple(calls)),
                      model=str(data.get("model") or default_model), adapter=adapter,
                      usage={k: v for k, v in usage.items() if k in ("prompt_tokens", "completion_tokens")
                             and isinstance(v, int)},
                      finish_reason=str(choice.get("finish_reason") or ("tool_calls" if calls else "stop")))


def request_from_openai(body: Any) -> ChatRequest:
    """The ChatRequest an OpenAI-shaped body describes (what a local server receives); InvalidRequestError."""
    try:
        messages = []
        for m in body["messages"]:
            calls = tuple(ToolCall(id=str(c["id"]), name=str(c["function"]["name"]),
                                   arguments=json.loads(c["function"].get("arguments") or "{}"))
                          for c in m.get("tool_calls") or ())
            messages.append(ChatMessage(m["role"], m.get("content") or "", calls, m.get("tool_call_id"), m.get("name")))
        tools = tuple(ToolSpec(t["function"]["name"], t["function"].get("description", ""),
                               t["function"].get("parameters") or {"type": "object", "properties": {}})
                      for t in body.get("tools") or ())
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"not a chat completions body: {exc}") from None
    return ChatRequest(tuple(messages), tools, adapter=body.get("model"),
                       parameters={k: v for k, v in body.items() if k in _PARAMETERS})


def openai_answer(result: ChatResult, *, completion_id: str = "chatcmpl-local") -> dict[str, Any]:
    """`result` as a `/chat/completions` answer (what a local server sends back)."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text or None}
    if result.tool_calls:
        message["tool_calls"] = [{"id": c.id, "type": "function",
                                  "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                 for c in result.tool_calls]
    usage = {**result.usage, "total_tokens": sum(result.usage.values())}
    return {"id": completion_id, "object": "chat.completion", "model": result.model,
            "choices": [{"index": 0, "finish_reason": result.finish_reason, "message": message}], "usage": usage}


# --- tool rules for the rule-based reasoner --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolRule:
    """When `pattern` (a regex, case-insensitive) matches the conversation's user text and `tool` is offered,
    call it with `arguments`, whose string values may use the pattern's named groups (`"{topic}"`)."""

    pattern: str
    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def call(self, text: str, offered: set[str]) -> ToolCall | None:
        if self.tool not in offered:
            return None
        match = re.search(self.pattern, text, re.IGNORECASE)
        if match is None:
            return None
        groups = {k: v or "" for k, v in match.groupdict().items()}
        arguments = {k: v.format(**groups) if isinstance(v, str) else v for k, v in self.arguments.items()}
        digest = hashlib.sha256(json.dumps([self.tool, arguments], sort_keys=True).encode()).hexdigest()[:12]
        return ToolCall(id=f"call_{digest}", name=self.tool, arguments=arguments)


def parse_tool_rules(raw: list[dict[str, Any]]) -> list[ToolRule]:
    """ToolRules from config (`ml.tool_rules`); InvalidRequestError naming the bad one."""
    rules = []
    for n, item in enumerate(raw):
        try:
            rule = ToolRule(pattern=str(item["pattern"]), tool=str(item["tool"]),
                            arguments=dict(item.get("arguments") or {}))
            re.compile(rule.pattern)
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise InvalidRequestError(f"ml.tool_rules[{n}]: {exc}") from None
        rules.append(rule)
    return rules
