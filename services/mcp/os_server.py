"""The OS as an MCP server: agents, events, messages, status and the audit chain as tools, plus agent contexts.

Served at `/api/mcp` through `services.mcp.http` (streamable HTTP, stateless, JSON responses), and usable
in-process with any MCP transport. Tools:
  list_agents, discover_agents, get_agent_status      reader role, or any agent
  send_event, send_message (optionally waiting)       operator role, or an agent (then sent as that agent)
  verify_audit_chain                                  operator role; only when the OS has an audit log
and the context tools and resources of `services.context.mcp_server`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from aos_core.events import Event
from aos_core.ports import AuditLog
from services.context.mcp_server import AgentIdArg, register_context_mcp, tool_errors
from services.mcp.principal import McpPrincipal, principal_of

if TYPE_CHECKING:
    from aos_core.event_records import EventRecord
    from aos_core.kernel import AgentOperatingSystem

log = logging.getLogger("aos.mcp")

EventType = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                                 description="CloudEvents type, e.g. order.created")]
Wait = Annotated[bool, Field(description="wait for the agents' results (up to wait_seconds)")]
WaitSeconds = Annotated[float, Field(gt=0, le=300, description="how long to wait for results, in seconds")]
Limit = Annotated[int, Field(ge=1, le=1000)]

_background: set[asyncio.Task[Any]] = set()  # deliveries nobody waits for; kept referenced until done


def _may_look(principal: McpPrincipal) -> None:
    if principal.agent_id is None:
        principal.require("reader", "reading the agent directory")


def _may_send(principal: McpPrincipal) -> str:
    """The event source to stamp: the acting agent, or the operator's name."""
    if principal.agent_id is not None:
        return f"/agents/{principal.agent_id}"
    principal.require("operator", "sending events")
    return f"/mcp/{principal.name}"


def _done(task: asyncio.Task[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("MCP-submitted event failed", exc_info=task.exception())


async def _submit(aos: AgentOperatingSystem, event: Event, to_agent: str | None, wait: bool, seconds: float
                  ) -> dict[str, Any]:
    if to_agent is not None:
        await aos.get_agent(to_agent)  # NotFoundError now, as a tool error, rather than in the background
    task = asyncio.ensure_future(aos.submit(event, to_agent=to_agent))
    _background.add(task)
    task.add_done_callback(_done)
    if wait:
        seconds = min(seconds, aos.config.api.max_wait)
        started = aos.clock.monotonic()
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if done:  # accepted; entities may still be applying it: wait on its record as POST /api/events does
            record: EventRecord = task.result()
            left = seconds - (aos.clock.monotonic() - started)
            if record.status == "pending" and left > 0:
                record = await aos.records.wait(record.id, left) or record
            return record.to_dict()
    # Delivery goes on; the event's record says how it ended (GET /api/events/{id}).
    return {"id": event.id, "status": "pending" if wait else "accepted", "location": f"/api/events/{event.id}"}


def create_os_mcp_server(aos: AgentOperatingSystem, *, audit_log: AuditLog | None = None, name: str = "aos"
                         ) -> MCPServer:
    """The MCP server of one kernel; `verify_audit_chain` checks `audit_log` (default: the kernel's own)."""
    server: MCPServer = MCPServer(name, instructions="The Agent Operating System: its agents, events and agent "
                                  "contexts.", log_level="WARNING")

    async def exists(agent_id: str) -> bool:
        return await aos.registry.get(agent_id) is not None

    register_context_mcp(server, aos.store, clock=aos.clock, exists=exists)

    @server.tool(description="List registered agents, optionally by capability, type or lifecycle state.")
    async def list_agents(ctx: Context, capability: str | None = None, agent_type: str | None = None,
                          state: str | None = None, limit: Limit = 100) -> dict[str, Any]:
        with tool_errors():
            _may_look(principal_of(ctx))
            agents = await aos.list_agents(capability=capability, agent_type=agent_type, state=state, limit=limit)
            return {"agents": agents}

    @server.tool(description="Find agents that can do something: matches capabilities, then types and ids, "
                             "case-insensitively.")
    async def discover_agents(need: Annotated[str, Field(min_length=1, max_length=200)], ctx: Context,
                              limit: Limit = 20) -> dict[str, Any]:
        with tool_errors():
            _may_look(principal_of(ctx))
            needle = need.casefold()
            by_capability, by_name = [], []
            for agent in await aos.list_agents(limit=10_000):
                if any(needle in str(c).casefold() for c in agent.get("capabilities", [])):
                    by_capability.append(agent)
                elif needle in agent["id"].casefold() or needle in str(agent.get("type", "")).casefold():
                    by_name.append(agent)
            return {"agents": (by_capability + by_name)[:limit]}

    @server.tool(description="An agent's status: type, lifecycle state, whether it is live, its capabilities.")
    async def get_agent_status(agent_id: AgentIdArg, ctx: Context) -> dict[str, Any]:
        with tool_errors():
            _may_look(principal_of(ctx))
            return await aos.get_agent(agent_id)

    @server.tool(description="Publish an event to every agent subscribed to its type. With wait, returns the "
                             "agents' results, or status 'pending' if they take longer than wait_seconds.")
    async def send_event(type: EventType, ctx: Context, data: Any = None, subject: str | None = None,
                         wait: Wait = False, wait_seconds: WaitSeconds = 10.0) -> dict[str, Any]:
        with tool_errors():
            event = Event(type=type, data=data, subject=subject, source=_may_send(principal_of(ctx)))
            return await _submit(aos, event, None, wait, wait_seconds)

    @server.tool(description="Send a message (an event) to one agent, whatever its subscriptions. With wait, "
                             "returns the agent's reply (its result), or status 'pending' after wait_seconds.")
    async def send_message(to_agent: AgentIdArg, type: EventType, ctx: Context, data: Any = None,
                           wait: Wait = False, wait_seconds: WaitSeconds = 10.0) -> dict[str, Any]:
        with tool_errors():
            event = Event(type=type, data=data, subject=to_agent, source=_may_send(principal_of(ctx)))
            return await _submit(aos, event, to_agent, wait, wait_seconds)

    audit: AuditLog | None = audit_log if audit_log is not None else aos.audit
    if audit is not None:

        @server.tool(description="Check the audit log's hash chain end to end; reports the first broken link.")
        async def verify_audit_chain(ctx: Context) -> dict[str, Any]:
            with tool_errors():
                principal_of(ctx).require("operator", "verifying the audit chain")
                return (await audit.verify()).to_dict()

    return server
