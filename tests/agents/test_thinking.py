"""The durable model-and-tools loop (`agent.think`) with real parts: the scripted chat server over HTTP
(`tests/support/chat_server.py`, the model service being a boundary), a real stdio MCP server that writes a
ledger line per call, SQLite for the agent's context and steps. A crash is an exception out of the model call
after the tool result was committed; the event is then handled again by a fresh agent, as after a restart
(the real `kill -9` of `aos serve` is tests/e2e/test_thinking_crash.py)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.thinking import Budget
from aos_core.agent_context import AgentContext
from aos_core.errors import ConflictError
from aos_core.events import Event
from aos_core.ports import JSON
from aos_core.testing import ManualClock
from services.context.turns import read_turns
from services.governance import PolicyEngine
from services.ml.chat import ChatRequest, ChatResult
from services.ml.endpoints import OpenAIChatReasoner
from services.ml.local_server import LocalScoringServer
from services.storage.sqlite import SqliteStateStore
from tests.support.agents import Thinker
from tests.support.chat_server import chat_server

ROOT = Path(__file__).resolve().parents[2]
LOOKUP = ("ledger__lookup", {"topic": "payments"})


class ModelCrashes(Exception):
    """Stands for the process dying while the model is being asked (the step was not committed)."""


class CrashOnce:
    """The real reasoner, except that model turn `turn` raises the first time it is asked for."""

    def __init__(self, inner: OpenAIChatReasoner, turn: int) -> None:
        self.inner, self.turn, self.crashed = inner, turn, False

    async def chat(self, request: ChatRequest) -> ChatResult:
        if not self.crashed and sum(m.role == "assistant" for m in request.messages) == self.turn:
            self.crashed = True
            raise ModelCrashes("kill -9")
        return await self.inner.chat(request)

    async def close(self) -> None:
        await self.inner.close()



@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    s = SqliteStateStore(tmp_path / "state.db")
    yield s
    await s.close()


def ledger_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"mcp_servers": [{"name": "ledger", "command": sys.executable, "cwd": str(ROOT),
                             "args": ["-m", "tests.support.ledger_mcp_server"],
                             "env": {"LEDGER": str(tmp_path / "ledger.jsonl")}}], **extra}


def ledger(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class Run:
    """Handles events the way the kernel's mailbox does: a fresh agent per activation, process, shut down."""

    def __init__(self, store: SqliteStateStore, server: LocalScoringServer, config: dict[str, Any]) -> None:
        self.store, self.config = store, config
        self.url = f"{server.url}/v1/chat/completions"
        self.clock = ManualClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
        self.policy: PolicyEngine | None = None
        self.status = ""

    async def handle(self, event: Event, *, crash_at: int | None = None) -> tuple[Thinker, AgentContext, Any]:
        agent = Thinker("thinker", config=self.config)
        inner = OpenAIChatReasoner(self.url, attempts=1)
        agent.reasoner = CrashOnce(inner, crash_at) if crash_at is not None else inner  # type: ignore[assignment]
        agent.bind(self.store, clock=self.clock)
        await agent.initialize()
        ctx = AgentContext("thinker", event, self.clock, policy=self.policy)
        try:
            self.status, result = await agent.process(event, ctx)
            return agent, ctx, result
        finally:
            await agent.shutdown()
            await inner.close()


def task(text: str, event_id: str = "ev-1") -> Event:
    return Event(id=event_id, type="question", source="people/test", data={"task": text})


async def test_the_model_calls_an_mcp_tool_reads_the_result_and_answers(tmp_path: Path,
                                                                        store: SqliteStateStore) -> None:
    server, script = chat_server([{"tool_calls": [LOOKUP], "usage": {"prompt_tokens": 40, "completion_tokens": 9}},
                                  {"content": "Feasible: we did it twice.",
                                   "usage": {"prompt_tokens": 70, "completion_tokens": 6}}])
    with server:
        _, _, result = await Run(store, server, ledger_config(tmp_path)).handle(task("Can we do payments?"))
    assert result["answer"] == "Feasible: we did it twice." and result["stopped"] is None
    assert (result["turns"], result["tool_calls"], result["tokens_in"], result["tokens_out"]) == (2, 1, 110, 15)
    calls = ledger(tmp_path)
    assert calls == [{"tool": "lookup", "arguments": {"topic": "payments"}, "key": "ev-1/thinker/main/2"}]

    first, second = [r["body"] for r in server.requests]
    offered = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert offered["ledger__lookup"]["parameters"]["required"] == ["topic"]  # the MCP tool's own JSON schema
    assert {"aos_send_message", "aos_read_context", "aos_patch_context", "aos_search_memory"} <= set(offered)
    assert first["messages"][0] == {"role": "system", "content": Thinker.default_purpose}
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_0_0"
    assert "payments was delivered twice before" in tool_message["content"]

    steps = await read_turns(store, "thinker", "ev-1")
    assert [s["kind"] for s in steps] == ["task", "model", "tool", "model"]
    state = (await Thinker.read_context(store, "thinker"))["state"]
    assert state["reasoning"]["tokens_in"] == 110 and state["reasoning"]["tokens_out"] == 15
    assert state["reasoning"]["by_model"]["scripted-model"] == {"tokens_in": 110, "tokens_out": 15, "turns": 2}
    assert state["outcomes"]["ev-1"]["answer"] == "Feasible: we did it twice."
    assert script.asked == [1, 1]


async def test_a_crash_after_the_tool_result_resumes_there_and_the_tool_runs_once(tmp_path: Path,
                                                                                  store: SqliteStateStore) -> None:
    server, script = chat_server([{"tool_calls": [LOOKUP]}, {"content": "done"}])
    with server:
        run = Run(store, server, ledger_config(tmp_path))
        with pytest.raises(ModelCrashes):
            await run.handle(task("payments?"), crash_at=1)  # between the tool result and the next model turn
        assert [s["kind"] for s in await read_turns(store, "thinker", "ev-1")] == ["task", "model", "tool"]
        assert (await Thinker.read_context(store, "thinker"))["state"].get("outcomes") is None  # not applied
        _, _, result = await run.handle(task("payments?"))  # redelivered to a fresh activation
        assert result["answer"] == "done" and result["tool_calls"] == 1
        _, _, again = await run.handle(task("payments?"))  # and once applied, a duplicate does nothing
    assert (run.status, again) == ("duplicate", None)
    assert len(ledger(tmp_path)) == 1
    assert script.asked == [1, 1]  # the first model turn was committed: it was not asked again
    assert [s["kind"] for s in await read_turns(store, "thinker", "ev-1")] == ["task", "model", "tool", "model"]


async def test_the_agents_own_effects_are_replayed_not_repeated_after_a_crash(tmp_path: Path,
                                                                              store: SqliteStateStore) -> None:
    send = ("aos_send_message", {"to": "cfo", "type": "finance.cost_request", "data": {"amount": 5}})
    note = ("aos_patch_context", {"patch": {"payments": "two engineers"}})
    server, script = chat_server([{"tool_calls": [send, note]}, {"content": "asked the CFO"}])
    with server:
        run = Run(store, server, {})
        with pytest.raises(ModelCrashes):
            await run.handle(task("cost?"), crash_at=1)
        agent, ctx, result = await run.handle(task("cost?"))
    assert result["answer"] == "asked the CFO"
    assert [(o.to_agent, o.event.type) for o in ctx.outbox] == [("cfo", "finance.cost_request")]
    steps = await read_turns(store, "thinker", "ev-1")
    sent = json.loads(next(s for s in steps if s["kind"] == "tool")["content"])
    assert ctx.outbox[0].event.id == sent["sent"]  # the id the model was told is the id that goes out
    assert agent.state["notes"] == {"payments": "two engineers"}
    assert script.asked == [1, 1]


async def test_a_step_budget_stops_the_loop_and_says_why(tmp_path: Path, store: SqliteStateStore) -> None:
    server, _ = chat_server([{"tool_calls": [LOOKUP]}, {"tool_calls": [LOOKUP]}, {"content": "never reached"}])
    with server:
        _, _, result = await Run(store, server, ledger_config(tmp_path, reasoning={"max_steps": 1})).handle(
            task("payments?"))
    assert result["answer"] is None and result["stopped"] == "max_steps"
    assert "1 model turns reached the budget of 1" in result["detail"]
    steps = await read_turns(store, "thinker", "ev-1")
    assert [s["kind"] for s in steps] == ["task", "model", "stop"] and steps[-1]["reason"] == "max_steps"
    assert ledger(tmp_path) == []  # the call the last allowed turn asked for is not run: nobody would read it


async def test_a_token_budget_stops_the_loop(tmp_path: Path, store: SqliteStateStore) -> None:
    server, _ = chat_server([{"tool_calls": [LOOKUP], "usage": {"prompt_tokens": 900, "completion_tokens": 200}},
                             {"content": "too late"}])
    with server:
        _, _, result = await Run(store, server, ledger_config(tmp_path, reasoning={"max_tokens": 1000})).handle(
            task("payments?"))
    assert result["stopped"] == "max_tokens" and result["tokens_in"] + result["tokens_out"] == 1100


async def test_a_tool_denied_by_policy_is_reported_to_the_model_and_not_run(tmp_path: Path,
                                                                            store: SqliteStateStore) -> None:
    server, _ = chat_server([{"tool_calls": [("ledger__drop_database", {"name": "prod"})]},
                             {"content": "I may not do that."}])
    with server:
        run = Run(store, server, ledger_config(tmp_path))
        run.policy = PolicyEngine.from_config([{"id": "no-drops", "kind": "tools", "agent": "thinker",
                                                "deny": ["*drop*"]}])
        _, _, result = await run.handle(task("drop prod"))
        second = server.requests[-1]["body"]
    assert result["answer"] == "I may not do that."
    assert second["messages"][-1]["content"].startswith("denied by policy no-drops:")
    assert ledger(tmp_path) == []
    step = next(s for s in await read_turns(store, "thinker", "ev-1") if s["kind"] == "tool")
    assert step["status"] == "denied"


async def test_an_unknown_tool_and_bad_arguments_are_errors_the_model_reads(tmp_path: Path,
                                                                            store: SqliteStateStore) -> None:
    server, _ = chat_server([{"tool_calls": [("nope", {}), ("aos_patch_context", {"patch": "x"})]},
                             {"content": "ok"}])
    with server:
        _, _, result = await Run(store, server, {}).handle(task("try"))
        messages = server.requests[-1]["body"]["messages"]
    assert result["answer"] == "ok"
    assert messages[-2]["content"] == "error: no tool named 'nope'"
    assert messages[-1]["content"].startswith("error: patch must be a JSON object")


def test_budget_config_is_checked() -> None:
    with pytest.raises(ValueError):
        Budget.model_validate({"max_steps": 0})
    with pytest.raises(ValueError):
        Budget.model_validate({"max_turns": 3})
    assert Budget().max_steps == 8


async def test_tokens_per_agent_and_model_reach_the_metrics(tmp_path: Path, store: SqliteStateStore) -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from services.observability import metrics

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics.use_meter_provider(provider)
    try:
        server, _ = chat_server([{"tool_calls": [LOOKUP], "usage": {"prompt_tokens": 40, "completion_tokens": 9}},
                                 {"content": "ok", "usage": {"prompt_tokens": 70, "completion_tokens": 6}}])
        with server:
            await Run(store, server, ledger_config(tmp_path)).handle(task("payments?"))
        got: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        for resource in reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points = metric.data.data_points  # counters have a value; histograms do not
                    got[metric.name] = [(dict(p.attributes), getattr(p, "value", None)) for p in points]
    finally:
        metrics.use_meter_provider(None)
        provider.shutdown()
    who = {"agent": "thinker", "model": "scripted-model"}
    assert got["ml.tokens.in"] == [(who, 110)] and got["ml.tokens.out"] == [(who, 15)]
    assert got["agent.tool_calls"] == [({"agent": "thinker", "tool": "ledger__lookup", "status": "ok"}, 1)]


async def test_two_activations_racing_on_one_event_commit_each_step_once(tmp_path: Path,
                                                                         store: SqliteStateStore) -> None:
    """What a zombie activation (a second instance still running an event the mailbox moved on from) meets:
    both ask the model, only the first commits the turn; the other stops on a ConflictError before it runs
    the tool, and its retry would resume from the committed steps."""
    server, script = chat_server([{"tool_calls": [LOOKUP]}, {"content": "done"}])
    gate = script.hold(0)
    with server:
        run = Run(store, server, ledger_config(tmp_path))
        first = asyncio.ensure_future(run.handle(task("payments?")))
        assert await asyncio.to_thread(script.wait_asked, 0, 1)  # the first activation is at the model
        second = asyncio.ensure_future(run.handle(task("payments?")))
        assert await asyncio.to_thread(script.wait_asked, 0, 2)  # and now the second too
        gate.set()
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert sum(isinstance(o, ConflictError) for o in outcomes) == 1
    assert len(ledger(tmp_path)) == 1
    assert [s["kind"] for s in await read_turns(store, "thinker", "ev-1")] == ["task", "model", "tool", "model"]


class FailsToCommitTheFirstToolResult:
    """The real SQLite store, except that the first write of a tool step fails, as if the process died
    after the tool ran and before its result was committed."""

    def __init__(self, inner: SqliteStateStore) -> None:
        self.inner, self.failed = inner, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def put(self, key: str, value: JSON, **options: Any) -> str:
        if not self.failed and isinstance(value, dict) and value.get("kind") == "tool":
            self.failed = True
            raise ModelCrashes("died before the tool result was committed")
        return await self.inner.put(key, value, **options)


async def test_a_tool_call_retried_after_a_lost_commit_carries_the_same_idempotency_key(
        tmp_path: Path, store: SqliteStateStore) -> None:
    server, _ = chat_server([{"tool_calls": [LOOKUP]}, {"content": "done"}])
    with server:
        run = Run(FailsToCommitTheFirstToolResult(store), server, ledger_config(tmp_path))  # type: ignore[arg-type]
        with pytest.raises(ModelCrashes):
            await run.handle(task("payments?"))
        _, _, result = await run.handle(task("payments?"))
    assert result["answer"] == "done"
    keys = [line["key"] for line in ledger(tmp_path)]
    assert keys == ["ev-1/thinker/main/2", "ev-1/thinker/main/2"]  # a server that honours the key runs it once
