"""The tools an agent offers its model: its MCP servers' tools, OS tools scoped to the agent, and its own.

Each tool is offered with its JSON Schema under a name models accept (`^[A-Za-z0-9_-]{1,64}$`): an MCP tool
`search` of server `kb` is `kb__search`, OS tools start with `aos_`. A tool runs with the step's idempotency
key (event id + step), which MCP calls carry in `_meta`. OS tools that change the agent itself (a message
queued, a note patched) change only what the event's commit writes, so when a loop resumes after a crash
their committed results are replayed into the agent instead of being called again.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aos_core.ports import JSON
from services.ml.chat import TOOL_NAME, ToolSpec

if TYPE_CHECKING:
    from agents.purpose_driven import PurposeDrivenAgent
    from services.mcp.client import McpClients

Run = Callable[[dict[str, Any], str], Awaitable[JSON]]  # (arguments, idempotency key) -> result
Replay = Callable[[dict[str, Any]], None]  # re-applies an in-memory effect from committed arguments


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool the model may call: its spec, how to run it, and (for in-memory effects) how to replay it."""

    spec: ToolSpec
    run: Run
    replay: Replay | None = None
    source: str = "agent"  # "os", "mcp:<server>" or "agent"

    @property
    def name(self) -> str:
        return self.spec.name


def tool(name: str, description: str, parameters: dict[str, Any], run: Run, *, replay: Replay | None = None,
         source: str = "agent") -> Tool:
    """A Tool from its parts (`parameters`: the JSON Schema properties; all of them required)."""
    schema = {"type": "object", "properties": parameters, "required": list(parameters),
              "additionalProperties": False}
    return Tool(ToolSpec(name, description, schema), run, replay, source)


class Toolbox:
    """The tools of one loop, by model-facing name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for item in tools:
            self.add(item)

    def add(self, item: Tool) -> None:
        if item.name in self._tools:
            raise ValueError(f"two tools are named {item.name!r}")
        self._tools[item.name] = item

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)


def model_name(server: str, tool_name: str) -> str:
    """The name a model sees for MCP tool `server/tool_name`."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"{server}__{tool_name}")[:64]


async def mcp_tools(clients: McpClients) -> list[Tool]:
    """Every tool of the agent's MCP servers, with its input schema, called with the step's idempotency key."""
    found = []
    for server, listed in (await clients.list_tools()).items():
        for item in listed:
            schema = dict(item.input_schema or {}) or {"type": "object", "properties": {}}
            schema.setdefault("type", "object")

            async def run(arguments: dict[str, Any], key: str, _name: str = f"{server}/{item.name}") -> JSON:
                result = await clients.call_tool(_name, arguments, idempotency_key=key)
                data: JSON = result.data
                return data

            name = model_name(server, item.name)
            if TOOL_NAME.match(name):
                found.append(Tool(ToolSpec(name, item.description or "", schema), run, source=f"mcp:{server}"))
    return found


def os_tools(agent: PurposeDrivenAgent) -> list[Tool]:
    """OS tools scoped to `agent`: message another agent, read its context, patch its notes, search its memory
    and (when the agent has one) the knowledge base."""
    from services.context.server import merge_patch

    async def send(arguments: dict[str, Any], key: str) -> JSON:
        event = agent.ctx.send(arguments["to"], arguments["type"], arguments.get("data"))
        return {"sent": event.id, "to": arguments["to"], "type": arguments["type"]}

    def resend(arguments: dict[str, Any]) -> None:
        agent.ctx.send(arguments["to"], arguments["type"], arguments.get("data"))

    async def read(arguments: dict[str, Any], key: str) -> JSON:
        return {k: v for k, v in agent.state.items() if k != "reasoning"}

    def apply_patch(arguments: dict[str, Any]) -> None:
        agent.state["notes"] = merge_patch(agent.state.get("notes") or {}, arguments["patch"])

    async def patch(arguments: dict[str, Any], key: str) -> JSON:
        if not isinstance(arguments.get("patch"), dict):
            raise ValueError("patch must be a JSON object (a JSON merge patch of the notes)")
        apply_patch(arguments)
        notes: JSON = agent.state["notes"]
        return notes

    async def memory(arguments: dict[str, Any], key: str) -> JSON:
        assert agent.context is not None
        found = await agent.context.search_memory(str(arguments["query"]), limit=5)
        return [{"seq": m["seq"], "at": m["at"], "entry": m["entry"]} for m in found]

    text = {"type": "string"}
    tools = [
        tool("aos_send_message", "Send a message to another agent (delivered after this event is committed).",
             {"to": {**text, "description": "the agent id"}, "type": {**text, "description": "the message type"},
              "data": {"type": "object", "description": "the message body"}}, send, replay=resend, source="os"),
        tool("aos_read_context", "Read this agent's own working memory (its state).", {}, read, source="os"),
        tool("aos_patch_context", "Change this agent's notes (state.notes) with a JSON merge patch.",
             {"patch": {"type": "object"}}, patch, replay=apply_patch, source="os"),
        tool("aos_search_memory", "Search this agent's long-term memory entries for a phrase.",
             {"query": text}, memory, source="os"),
    ]
    knowledge = agent.knowledge
    if knowledge is not None:
        async def search(arguments: dict[str, Any], key: str) -> JSON:
            hits = await knowledge.search(str(arguments["query"]), agent_id=agent.agent_id, limit=5)
            return [{"citation": h.citation, "title": h.title, "snippet": h.snippet} for h in hits]

        tools.append(tool("aos_search_knowledge", "Search the knowledge base (shared and this agent's documents).",
                          {"query": text}, search, source="os"))
    return tools
