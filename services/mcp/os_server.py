"""The OS as an MCP server: agents, events, messages, status and the audit chain as tools, plus agent contexts.

Served at `/api/mcp` through `services.mcp.http` (streamable HTTP, stateless, JSON responses), and usable
in-process with any MCP transport. Tools:
  list_agents, discover_agents, get_agent_status      reader role, or any agent
  send_event, send_message (optionally waiting)       operator role, or an agent (then sent as that agent)
  verify_audit_chain                                  operator role; only when the OS has an audit log
the context tools and resources of `services.context.mcp_server` (`resources/list`: the contexts the caller
may read, `services.mcp.protocol`), and the `agent_briefing` prompt (`services.mcp.prompts`).

The send tools accept an event the way `POST /api/events` does and answer what it answers
(`aos_core.api.answer`): with `wait`, the event's status and results once every target answered within
`wait_seconds` (at most `api.max_wait`), else status `pending` and the `status_url` to poll. `serverInfo.version`
is the app's version. `subscriptions/listen` (2026-07-28) is not served: a stateless endpoint behind an HTTP
function holds no stream, so it is Method not found at once and no `listChanged`/`subscribe` is advertised.
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

from aos_core import api
from aos_core.events import Event
from aos_core.ports import AuditLog
from services.context.mcp_server import AgentIdArg, register_context_mcp, tool_errors
from services.mcp.principal import McpPrincipal, principal_of
from services.mcp.prompts import register_prompts
from services.mcp.protocol import OsProtocol

if TYPE_CHECKING:
    from aos_core.kernel import AgentOperatingSystem

EventType = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                                 description="CloudEvents type, e.g. order.created")]
Wait = Annotated[bool, Field(description="wait for the agents' results (up to wait_seconds)")]
WaitSeconds = Annotated[float, Field(ge=0, description="how long to wait for results, in seconds; at most the "
                                                       "app's api.max_wait (30 by default)")]
Limit = Annotated[int, Field(ge=1, le=1000)]


def _may_look(principal: McpPrincipal) -> None:
    if principal.agent_id is None:
        principal.require("reader", "reading the agent directory")


def _may_send(principal: McpPrincipal) -> str:
    """The event source to stamp: the acting agent, or the operator's name."""
    if principal.agent_id is not None:
        return f"/agents/{principal.agent_id}"
    principal.require("operator", "sending events")
    return f"/mcp/{principal.name}"


@cache
def app_version() -> str:
    """The app's version: the installed package's, else `pyproject.toml`'s (a Functions deployment ships the
    repo's files without installing the package)."""
    try:
        return version("aos")
    except PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])


async def _send(aos: AgentOperatingSystem, event: Event, to_agent: str | None, actor: str, wait: float | None
                ) -> dict[str, Any]:
    if wait is not None and wait > aos.config.api.max_wait:
        raise ValueError(f"wait_seconds must be from 0 to {aos.config.api.max_wait:g} (api.max_wait), not {wait:g}")
    if to_agent is not None:
        await aos.get_agent(to_agent)  # NotFoundError before anything is recorded, as POST .../messages does
    record = await aos.submit(aos.telemetry.inject(event), to_agent=to_agent, actor=actor)
    answer = await api.answer(aos, [record], wait, batch=False)
    return dict(answer.body)


def create_os_mcp_server(aos: AgentOperatingSystem, *, audit_log: AuditLog | None = None, name: str = "aos"
                         ) -> MCPServer:
    """The MCP server of one kernel; `verify_audit_chain` checks `audit_log` (default: the kernel's own)."""
    protocol = OsProtocol(aos)
    server: MCPServer = MCPServer(name, instructions="The Agent Operating System: its agents, events and agent "
                                  "contexts.", version=app_version(), log_level="WARNING", subscriptions=False,
                                  middleware=[protocol])

    async def exists(agent_id: str) -> bool:
        return await aos.registry.get(agent_id) is not None

    access = register_context_mcp(server, aos.store, clock=aos.clock, exists=exists)
    register_prompts(server, aos, access)
    protocol.bind(server, access)

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

    default_wait = min(10.0, aos.config.api.max_wait)

    @server.tool(description="Publish an event to every agent subscribed to its type. Returns its id, status and "
                             "status_url; with wait, the agents' results once all answered within wait_seconds "
                             "(else status 'pending'), as POST /api/events?wait= does.")
    async def send_event(type: EventType, ctx: Context, data: Any = None, subject: str | None = None,
                         wait: Wait = False, wait_seconds: WaitSeconds = default_wait) -> dict[str, Any]:
        with tool_errors():
            principal = principal_of(ctx)
            event = Event(type=type, data=data, subject=subject, source=_may_send(principal))
            return await _send(aos, event, None, principal.name, wait_seconds if wait else None)

    @server.tool(description="Send a message (an event) to one agent, whatever its subscriptions. Returns its "
                             "id, status and status_url; with wait, the agent's reply (its result) once it "
                             "answered within wait_seconds (else status 'pending').")
    async def send_message(to_agent: AgentIdArg, type: EventType, ctx: Context, data: Any = None,
                           wait: Wait = False, wait_seconds: WaitSeconds = default_wait) -> dict[str, Any]:
        with tool_errors():
            principal = principal_of(ctx)
            event = Event(type=type, data=data, subject=to_agent, source=_may_send(principal))
            return await _send(aos, event, to_agent, principal.name, wait_seconds if wait else None)

    audit: AuditLog | None = audit_log if audit_log is not None else aos.audit
    if audit is not None:

        @server.tool(description="Check the audit log's hash chain end to end; reports the first broken link.")
        async def verify_audit_chain(ctx: Context) -> dict[str, Any]:
            with tool_errors():
                principal_of(ctx).require("operator", "verifying the audit chain")
                return (await audit.verify()).to_dict()

    return server
