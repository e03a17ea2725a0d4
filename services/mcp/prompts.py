"""The OS MCP server's prompt: `agent_briefing`, a purpose-driven agent's purpose, goals and recent decisions.

A model that is about to talk to (or act for) the CEO, CFO or CTO gets, in one user message, what that agent
is for, how far along each goal is (`state.progress`, kept after every event) and the decisions it took last
(`state.decisions`, kept by the business agents). Before the agent handled anything, purpose and goals come
from its type and config. The caller must be allowed to read the agent's context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from services.context.mcp_server import FORBIDDEN, AgentIdArg
from services.mcp.principal import AccessDeniedError, principal_of

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from aos_core.kernel import AgentOperatingSystem
    from services.context.mcp_server import ContextAccess

RECENT_DECISIONS = 10


def register_prompts(server: MCPServer, aos: AgentOperatingSystem, access: ContextAccess) -> None:
    @server.prompt(name="agent_briefing", title="Agent briefing",
                   description="A purpose-driven agent's purpose, goal progress and recent decisions, as a brief "
                               "to act on (for example before sending it a message).")
    async def agent_briefing(agent_id: AgentIdArg, ctx: Context) -> str:
        record = await aos.registry.get(agent_id)
        if record is None:
            raise MCPError(code=INVALID_PARAMS, message=f"agent {agent_id!r} is not registered")
        try:
            await access.check(principal_of(ctx), agent_id)
        except AccessDeniedError as exc:
            raise MCPError(code=FORBIDDEN, message=f"forbidden: {exc}") from None
        agent_class = aos.registry.agent_class(record.type) if aos.registry.has_type(record.type) else None
        if agent_class is None or not hasattr(agent_class, "evaluate_progress"):
            raise MCPError(code=INVALID_PARAMS, message=f"agent {agent_id!r} ({record.type}) has no purpose or "
                                                        "goals: it is not a purpose-driven agent")
        context = await aos.read_context(agent_id) or {}
        state: dict[str, Any] = context.get("state") or {}
        progress: dict[str, Any] = state.get("progress") or {}
        purpose = progress.get("purpose") or record.config.get("purpose") or getattr(agent_class,
                                                                                   "default_purpose", "")
        return render(agent_id, record.type, str(purpose), _goals(progress, record.config, agent_class),
                      list(state.get("decisions") or [])[-RECENT_DECISIONS:])


def _goals(progress: dict[str, Any], config: dict[str, Any], agent_class: Any) -> list[dict[str, Any]]:
    if progress.get("goals"):
        return list(progress["goals"])
    declared = config.get("goals") or getattr(agent_class, "default_goals", ())
    goals = []
    for goal in declared:  # not measured yet: as declared
        fields = goal if isinstance(goal, dict) else goal.model_dump()
        goals.append({"id": fields.get("id"), "metric": fields.get("metric"), "target": fields.get("target"),
                      "current": fields.get("baseline", 0.0), "progress": 0.0, "met": False})
    return goals


def render(agent_id: str, agent_type: str, purpose: str, goals: list[dict[str, Any]],
           decisions: list[dict[str, Any]]) -> str:
    lines = [f"You are briefed on {agent_id}, the {agent_type} agent of this company.",
             f"Purpose: {purpose or '(none stated)'}", "", "Goals:"]
    for goal in goals:
        status = "met" if goal.get("met") else "nothing to measure yet" if goal.get("measured") is False else \
            f"{goal.get('percent', round(float(goal.get('progress') or 0) * 100))}% of the way"
        lines.append(f"- {goal.get('id')}: {goal.get('metric')} is {goal.get('current')} (target "
                     f"{goal.get('target')}), {status}")
    if not goals:
        lines.append("- none")
    lines += ["", "Recent decisions (oldest first):"]
    for decision in decisions:
        lines.append(f"- {decision.get('at', '?')} {decision.get('title')}: {decision.get('chosen')} "
                     f"(decision {decision.get('id')})")
    if not decisions:
        lines.append("- none yet")
    return "\n".join(lines)
