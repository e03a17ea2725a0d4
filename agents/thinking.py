"""The durable model-and-tools loop of a purpose-driven agent (`await agent.think(task)`).

The model gets the task and the agent's tools; each turn either answers or calls tools, whose results go
back to the model, until it answers or a budget (model turns, tokens, wall time) stops the loop. Every step
is committed to the agent's context before the next one starts, under the event being handled:

  context/<agent>/turns/<event>/<loop>/<seq>    seq 0: the task; then model turns, tool results, a stop

Each step is written create-only, so a step exists once. A redelivered event (after a crash, `kill -9`, a
lost commit race) runs the handler again; `think` reads the committed steps, rebuilds the conversation,
replays the in-memory effects of the agent's own tools, and goes on from the last committed step: a model
turn already answered is not asked again and a tool call whose result is committed does not run again. A
tool call carries the idempotency key `<event>/<agent>/<loop>/<seq>`, the same on every retry of that step,
so an MCP server that honours it runs the call once even when the crash came between the call and its commit.

Tokens are counted per agent and per model (metrics `ml.tokens.in` / `ml.tokens.out`, and the agent's
`state.reasoning`, committed with the event); the steps are readable as a conversation at
`GET /api/agents/{id}/turns/{event}` (services.context.turns) and on the dashboard.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from aos_core.errors import PolicyDenied
from aos_core.ports import JSON, PolicyRequest
from services.context.turns import turns_prefix
from services.ml import telemetry
from services.ml.chat import ChatMessage, ChatRequest, ChatResult, ToolCall
from services.ml.reasoner import clip
from services.reliability import is_transient

if TYPE_CHECKING:
    from agents.purpose_driven import PurposeDrivenAgent
    from agents.toolbox import Toolbox
    from services.ml.reasoner import Reasoner

_RESULT_CHARS = 16_000  # a tool result is cut to this many characters, for the model and in its step
_RECENT = 20  # loops an agent lists in state.reasoning.recent


class Budget(BaseModel):
    """Limits per event (agent config `reasoning`): model turns, tokens in and out, and wall time in seconds."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(default=8, ge=1, le=100)
    max_tokens: int = Field(default=50_000, ge=1)
    max_seconds: float = Field(default=300.0, gt=0)


@dataclass
class Thought:
    """How a loop ended: the answer (None when a budget stopped it, `stopped` says which), turns and tokens."""

    answer: str | None
    stopped: str | None = None
    detail: str = ""
    turns: int = 0
    tool_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    by_model: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> tokens_in, tokens_out, turns

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.answer, "stopped": self.stopped, "detail": self.detail, "turns": self.turns,
                "tool_calls": self.tool_calls, "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
                "by_model": self.by_model}


class ToolLoop:
    """One loop of `agent` for the event it is handling. Build it with `agent.think(...)`."""

    def __init__(self, agent: PurposeDrivenAgent, reasoner: Reasoner, toolbox: Toolbox, budget: Budget, *,
                 adapter: str | None, system: str, loop: str = "main",
                 parameters: dict[str, Any] | None = None) -> None:
        self.agent, self.reasoner, self.toolbox, self.budget = agent, reasoner, toolbox, budget
        self.adapter, self.system, self.loop = adapter, system, loop
        self.parameters = dict(parameters or {})
        ctx = agent.ctx
        self.event_id = ctx.event.id
        self.prefix = turns_prefix(agent.agent_id, self.event_id, loop)
        self.store = agent.require_store()
        self.messages: list[ChatMessage] = []
        self.thought = Thought(answer=None)
        self.seq = 0
        self.started: datetime | None = None

    async def run(self, task: str) -> Thought:
        steps = [d.value for d in await self.store.list(self.prefix, limit=10_000)]
        if not steps:
            steps = [await self._commit("task", {"system": self.system, "user": task,
                                                 "tools": [s.name for s in self.toolbox.specs()]})]
        finished = self._replay(steps)
        if not finished:
            await self._go_on()
        self._account()
        return self.thought

    # --- rebuilding the conversation from committed steps -------------------------------------------

    def _replay(self, steps: list[dict[str, Any]]) -> bool:
        """Rebuild messages and counts from `steps`; True when they already end the loop."""
        for step in steps:
            self.seq = int(step["seq"]) + 1
            kind = step["kind"]
            if kind == "task":
                self.started = datetime.fromisoformat(step["at"])
                if step["system"]:
                    self.messages.append(ChatMessage("system", step["system"]))
                self.messages.append(ChatMessage("user", step["user"]))
            elif kind == "model":
                self._took(ChatResult.from_dict(step["result"]))
            elif kind == "tool":
                call = ToolCall.from_dict(step["call"])
                self.messages.append(ChatMessage("tool", step["content"], tool_call_id=call.id, name=call.name))
                self.thought.tool_calls += 1
                found = self.toolbox.get(call.name)
                if step["status"] == "ok" and found is not None and found.replay is not None:
                    found.replay(call.arguments)  # its effect lives in the state this event commits
            elif kind == "stop":
                self.thought.stopped, self.thought.detail = step["reason"], step["detail"]
        return self.thought.answer is not None or self.thought.stopped is not None

    def _took(self, result: ChatResult) -> None:
        self.messages.append(result.message)
        tokens_in, tokens_out = int(result.usage.get("prompt_tokens", 0)), int(result.usage.get("completion_tokens", 0))
        t = self.thought
        t.turns += 1
        t.tokens_in += tokens_in
        t.tokens_out += tokens_out
        model = t.by_model.setdefault(result.model, {"tokens_in": 0, "tokens_out": 0, "turns": 0})
        model["tokens_in"] += tokens_in
        model["tokens_out"] += tokens_out
        model["turns"] += 1
        if not result.tool_calls:
            self.thought.answer = result.text

    # --- going on from the last committed step ------------------------------------------------------

    async def _go_on(self) -> None:
        while True:
            over = self._over_budget()
            if over is not None:
                await self._stop(*over)
                return
            for call in self._unanswered():
                await self._call(call)
            over = self._over_budget()
            if over is not None:
                await self._stop(*over)
                return
            remaining = self.budget.max_seconds - self._elapsed()
            request = ChatRequest(tuple(self.messages), self.toolbox.specs(), adapter=self.adapter,
                                  parameters=self.parameters)
            try:
                async with asyncio.timeout(remaining):
                    result = await self.reasoner.chat(request)
            except TimeoutError:
                await self._stop("max_seconds", f"the model did not answer within the {self.budget.max_seconds:g} s "
                                                f"budget")
                return
            await self._commit("model", {"result": result.to_dict()})
            self._took(result)
            usage = {"agent": self.agent.agent_id, "model": result.model}
            telemetry.increment("ml.tokens.in", int(result.usage.get("prompt_tokens", 0)), **usage)
            telemetry.increment("ml.tokens.out", int(result.usage.get("completion_tokens", 0)), **usage)
            if self.thought.answer is not None:
                return

    def _unanswered(self) -> list[ToolCall]:
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        last = next((m for m in reversed(self.messages) if m.role == "assistant"), None)
        return [c for c in last.tool_calls if c.id not in answered] if last is not None else []

    def _over_budget(self) -> tuple[str, str] | None:
        b, t = self.budget, self.thought
        if t.turns >= b.max_steps:
            return "max_steps", f"{t.turns} model turns reached the budget of {b.max_steps}"
        if t.tokens_in + t.tokens_out >= b.max_tokens:
            return "max_tokens", f"{t.tokens_in + t.tokens_out} tokens reached the budget of {b.max_tokens}"
        if self._elapsed() >= b.max_seconds:
            return "max_seconds", f"{self._elapsed():.1f} s reached the budget of {b.max_seconds:g} s"
        return None

    def _elapsed(self) -> float:
        return (self.agent.ctx.now() - self.started).total_seconds() if self.started else 0.0

    async def _call(self, call: ToolCall) -> None:
        """Run one tool call (unless policy denies it) and commit its result before anything else happens."""
        key = f"{self.event_id}/{self.agent.agent_id}/{self.loop}/{self.seq}"
        found = self.toolbox.get(call.name)
        status = "ok"
        try:
            if found is None:
                raise LookupError(f"no tool named {call.name!r}")
            await self._check_policy(call.name)
            content = tool_result(await found.run(dict(call.arguments), key))
        except PolicyDenied as exc:
            status, content = "denied", f"denied by policy {exc.rule_id}: {exc.reason}"
        except Exception as exc:
            if isinstance(exc, ConnectionError | TimeoutError) or is_transient(exc):
                raise  # the step is not committed: the event is retried and calls again with the same key
            status, content = "error", f"error: {exc}"
        source = found.source if found is not None else "unknown"
        telemetry.increment("agent.tool_calls", agent=self.agent.agent_id, tool=call.name, status=status)
        await self._commit("tool", {"call": call.to_dict(), "status": status, "content": clip(content, _RESULT_CHARS),
                                    "source": source, "idempotency_key": key})
        self.messages.append(ChatMessage("tool", clip(content, _RESULT_CHARS), tool_call_id=call.id, name=call.name))
        self.thought.tool_calls += 1

    async def _check_policy(self, tool_name: str) -> None:
        """PolicyDenied (audited as `policy.denied`) when a `tools` rule forbids this agent the tool."""
        ctx = self.agent.ctx
        if ctx.policy is not None:
            await ctx.policy.enforce(PolicyRequest("tool.call", caller=f"agent:{self.agent.agent_id}",
                                                   agent_id=self.agent.agent_id, agent_type=self.agent.agent_type,
                                                   tool=tool_name, subject=f"agent/{self.agent.agent_id}"))

    async def _stop(self, reason: str, detail: str) -> None:
        await self._commit("stop", {"reason": reason, "detail": detail})
        self.thought.stopped, self.thought.detail = reason, detail

    async def _commit(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        # Create-only: a step is written once; a second writer (which the agent's mailbox rules out) gets a
        # ConflictError, the event is retried, and the retry resumes from what is committed.
        at = self.agent.ctx.now()
        step = {"seq": self.seq, "kind": kind, "at": at.isoformat(), "loop": self.loop, "event_id": self.event_id,
                **fields}
        await self.store.put(f"{self.prefix}{self.seq:04d}", step, if_none_match=True)
        if kind == "task":
            self.started = at
        self.seq += 1
        return step

    def _account(self) -> None:
        """Tokens per agent and per model, and this loop in the recent list, in the state the event commits."""
        t = self.thought
        reasoning = self.agent.state.setdefault("reasoning", {})
        reasoning["tokens_in"] = int(reasoning.get("tokens_in", 0)) + t.tokens_in
        reasoning["tokens_out"] = int(reasoning.get("tokens_out", 0)) + t.tokens_out
        by_model = reasoning.setdefault("by_model", {})
        for model, used in t.by_model.items():
            entry = by_model.setdefault(model, {"tokens_in": 0, "tokens_out": 0, "turns": 0})
            for name, value in used.items():
                entry[name] = int(entry.get(name, 0)) + value
        reasoning["loops"] = int(reasoning.get("loops", 0)) + 1
        recent = reasoning.setdefault("recent", [])
        recent.append({"event_id": self.event_id, "loop": self.loop, "at": self.agent.ctx.now().isoformat(),
                       **{k: v for k, v in t.to_dict().items() if k != "answer"}})
        del recent[:-_RECENT]


def tool_result(data: JSON) -> str:
    """How a tool's result reads to the model."""
    return data if isinstance(data, str) else json.dumps(data, default=str)
