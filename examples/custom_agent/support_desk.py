"""A minimal custom agent to copy: a support desk that answers tickets and measures itself against a goal.

Everything an AOS agent needs is here: a type name, capabilities for discovery, the events it handles, state
that survives restarts (kept in its ContextMCPServer; committed after each event), a goal whose progress the
dashboard shows, and messages to other agents through the bus (never a direct call).

Use it with `make run`: copy `config.json` beside it into the config folder as `custom-agent.json` (it names
the type; config files merge), restart, then register an instance and send it a ticket:

    aos agents register support_desk support --subscribe 'ticket.*'
    aos send ticket.opened --data '{"ticket": "T-1", "severity": "high"}' --wait 5
"""

from __future__ import annotations

from typing import Any, ClassVar

from agents import Goal, PurposeDrivenAgent
from aos_core.errors import InvalidEventError
from aos_core.events import Event
from aos_core.ports import JSON


class SupportDeskAgent(PurposeDrivenAgent):
    agent_type = "support_desk"
    capabilities = ("support",)
    default_purpose = "Answer every support ticket, the urgent ones first"
    default_goals: ClassVar[tuple[Goal | dict[str, Any], ...]] = (
        Goal(id="answer-tickets", metric="tickets_answered", target=100),)

    def initial_state(self) -> dict[str, Any]:
        return {**super().initial_state(), "open": {}}

    async def handle_event(self, event: Event) -> JSON:
        data = event.data if isinstance(event.data, dict) else {}
        ticket = data.get("ticket")
        if not isinstance(ticket, str) or not ticket:
            raise InvalidEventError("a ticket event needs data.ticket")  # rejected; state unchanged
        if event.type == "ticket.opened":
            self.state["open"][ticket] = {"severity": data.get("severity", "normal"), "at": self.ctx.now().isoformat()}
            if data.get("severity") == "high":  # the CTO triages what might be an incident
                self.ctx.send("cto", "ops.incident", {"id": f"ticket-{ticket}", "title": f"urgent ticket {ticket}",
                                                      "severity": "medium"})
            return {"open": len(self.state["open"])}
        if event.type == "ticket.answered" and self.state["open"].pop(ticket, None) is not None:
            self.increment_metric("tickets_answered")
        return {"open": len(self.state["open"]), "answered": self.metrics.get("tickets_answered", 0)}
