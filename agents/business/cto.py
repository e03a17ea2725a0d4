"""The CTO agent: incident triage, architecture decision records, and technology risk assessment of proposals.

Incidents (`ops.incident`) and the OS's own alerts (`aos.alert.raised`) are triaged to a priority with a
response target; P1 and P2 are escalated, and a P1 raises a risk. Proposals (`tech.proposal`, or the CEO's
`tech.feasibility_request`) get a risk score from named technology factors and an effort estimate in weeks, and
the model's view: the CTO asks it with `think`, and it may first call tools (the ADR list, the risk registry,
the knowledge base when `knowledge_path` is set, the CTO's MCP servers). The CEO gets the assessment back as
`tech.feasibility_assessment` in its conversation. ADRs are numbered and kept in state.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.business.base import BusinessAgent, handles, key_of
from agents.purpose_driven import Goal
from agents.toolbox import Tool, tool
from aos_core.events import ID_PATTERN, Event
from aos_core.ports import JSON

_KEY = ID_PATTERN
_INCIDENTS = 100

# Technology risk factors: what in a proposal makes delivery harder, and by how much.
RISK_FACTORS: dict[str, tuple[str, int]] = {
    r"\bmigrat": ("data or system migration", 2),
    r"\blegacy\b": ("legacy systems", 2),
    r"\breal[- ]time\b": ("real-time processing", 2),
    r"\b(ai|ml|machine learning|model)\b": ("machine learning in production", 2),
    r"\bpayments?\b": ("regulated payments", 2),
    r"\b(gdpr|compliance|regulat)": ("regulatory compliance", 2),
    r"\b(global|multi-region)\b": ("multi-region operation", 2),
    r"\bnew platform\b": ("a new platform", 3),
    r"\bhardware\b": ("hardware", 3),
    r"\bsecurity\b": ("security-sensitive", 1),
    r"\bintegrat": ("third-party integration", 1),
    r"\bmobile\b": ("mobile clients", 1),
    r"\bapi\b": ("a public API", 1),
}
_SEVERITIES: dict[str, Literal["P1", "P2", "P3", "P4"]] = {
    "critical": "P1", "sev1": "P1", "p1": "P1", "high": "P2", "error": "P2", "sev2": "P2", "p2": "P2",
    "medium": "P3", "warning": "P3", "sev3": "P3", "p3": "P3", "low": "P4", "info": "P4", "sev4": "P4", "p4": "P4",
}
_KEYWORDS: list[tuple[str, Literal["P1", "P2", "P3"]]] = [
    (r"\b(outage|down|data loss|breach|unavailable)\b", "P1"),
    (r"\b(degraded|latency|errors?|failing|timeouts?)\b", "P2"),
    (r"\b(slow|warning|flaky)\b", "P3"),
]
RESPONSE_MINUTES = {"P1": 15, "P2": 60, "P3": 240, "P4": 1440}


class _Input(BaseModel):
    model_config = ConfigDict(extra="allow")


class Proposal(_Input):
    initiative: str | None = Field(default=None, pattern=_KEY)
    id: str | None = Field(default=None, pattern=_KEY)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    scope: list[str] = Field(default_factory=list, max_length=50, description="deliverables; each adds effort")


class Incident(_Input):
    id: str | None = Field(default=None, max_length=200)
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=5000)
    severity: str | None = Field(default=None, max_length=20)
    service: str | None = Field(default=None, max_length=200)


class AdrProposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=200)
    context: str = Field(min_length=1, max_length=5000)
    decision: str = Field(min_length=1, max_length=5000)
    consequences: str = Field(default="", max_length=5000)
    alternatives: list[str] = Field(default_factory=list, max_length=20)


def assess(proposal: Proposal) -> dict[str, Any]:
    """Risk factors found in the proposal's text, its risk level, and an effort estimate in weeks."""
    text = f"{proposal.title} {proposal.description} {' '.join(proposal.scope)}".lower()
    factors = [(name, weight) for pattern, (name, weight) in RISK_FACTORS.items() if re.search(pattern, text)]
    score = sum(weight for _, weight in factors)
    level = "low" if score < 3 else "medium" if score < 6 else "high"
    effort = 4 + 2 * len(proposal.scope) + round(1.5 * score)
    return {"risk_score": score, "risk_level": level, "factors": [name for name, _ in factors],
            "effort_weeks": effort, "feasible": level != "high" or score < 8}


def triage(incident: Incident) -> Literal["P1", "P2", "P3", "P4"]:
    """The priority: from a stated severity, else from what the incident says."""
    if incident.severity and incident.severity.lower() in _SEVERITIES:
        return _SEVERITIES[incident.severity.lower()]
    text = f"{incident.title} {incident.description}".lower()
    for pattern, priority in _KEYWORDS:
        if re.search(pattern, text):
            return priority
    return "P4"


class CTOAgent(BusinessAgent):
    agent_type = "cto"
    capabilities = ("technology", "incident-triage", "architecture", "feasibility")
    subscriptions = ("ops.incident", "ops.incident.resolved", "tech.proposal", "tech.adr.propose")
    default_purpose = "Keep the technology reliable and every proposal honest about its effort and risk"
    default_adapter = "cto"
    default_goals: ClassVar[tuple[Goal | dict[str, Any], ...]] = (
        Goal(id="triage-incidents", description="triage incidents", metric="incidents_triaged", target=10),
        Goal(id="record-adrs", description="record architecture decisions", metric="adrs_recorded", target=3),
        Goal(id="assess-proposals", description="assess proposals", metric="assessments_given", target=5),
    )

    def initial_state(self) -> dict[str, Any]:
        return {**super().initial_state(), "incidents": {}, "adrs": [], "assessments": {}}

    # --- incidents ---------------------------------------------------------------------------------------

    @handles("ops.incident", "aos.alert.raised")
    async def triage_incident(self, event: Event) -> JSON:
        incident = self.parse(Incident, event)
        if event.type == "aos.alert.raised":  # the OS's own alert: its rule and key name it
            data = event.data if isinstance(event.data, dict) else {}
            incident = incident.model_copy(update={
                "id": f"alert:{event.subject or data.get('rule_id')}",
                "title": incident.title or f"alert {data.get('rule_id')}: "
                                           f"{data.get('description') or data.get('kind')}",
                "service": "aos"})
        incidents = self.state.setdefault("incidents", {})
        # A report without an id is the incident already open for that service and title, if there is one
        # (monitoring repeats itself): it is not a second incident, and raises no second risk.
        incident_id = incident.id or next(
            (i["id"] for i in incidents.values() if i["status"] == "open" and i.get("service") == incident.service
             and str(i.get("title", "")).lower() == (incident.title or "").lower() and incident.title), event.id)
        if incident_id in incidents and incidents[incident_id]["status"] == "open":
            return incidents[incident_id]
        priority = triage(incident)
        record = {"id": incident_id, "title": incident.title or incident.description[:80] or event.type,
                  "priority": priority, "respond_within_minutes": RESPONSE_MINUTES[priority],
                  "service": incident.service, "status": "open", "opened_at": self.ctx.now().isoformat(),
                  "risk": None}
        if priority == "P1":
            risk = await self.raise_risk(
                f"incident-{key_of(incident_id)}", title=f"P1 incident: {record['title']}"[:200],
                description=incident.description or record["title"], category="operational", likelihood=5,
                impact=5 if "data loss" in incident.description.lower() else 4,
                mitigations=["incident commander assigned", "post-incident review"])
            record["risk"] = risk.id
        if priority in ("P1", "P2"):
            self.ctx.publish("tech.incident.escalated", record)
        incidents[incident_id] = record
        if len(incidents) > _INCIDENTS:  # keep the newest; resolved ones go first
            for old in sorted(incidents.values(), key=lambda i: (i["status"] == "open", i["opened_at"])):
                if len(incidents) <= _INCIDENTS:
                    break
                del incidents[old["id"]]
        self.increment_metric("incidents_triaged")
        self._count_open_p1()
        return record

    @handles("ops.incident.resolved", "aos.alert.resolved")
    async def resolve_incident(self, event: Event) -> JSON:
        data = event.data if isinstance(event.data, dict) else {}
        incident_id = (f"alert:{event.subject or data.get('rule_id')}" if event.type == "aos.alert.resolved"
                       else str(data.get("id") or ""))
        incident = self.state.setdefault("incidents", {}).get(incident_id)
        if incident is None:
            return {"id": incident_id, "known": False}
        incident.update(status="resolved", resolved_at=self.ctx.now().isoformat())
        self._count_open_p1()
        return incident

    def _count_open_p1(self) -> None:
        self.record_metric("open_p1_incidents", sum(1 for i in self.state["incidents"].values()
                                                   if i["status"] == "open" and i["priority"] == "P1"))

    # --- proposals and the CEO's feasibility questions -----------------------------------------------------

    @handles("tech.proposal", "tech.feasibility_request")
    async def assess_proposal(self, event: Event) -> JSON:
        proposal = self.parse(Proposal, event)
        key = proposal.initiative or proposal.id or key_of(event.id)
        found = assess(proposal)
        thought = await self.think(
            f"Technology assessment of {proposal.title}: {proposal.description}. Risk {found['risk_level']} "
            f"({', '.join(found['factors']) or 'no risk factors'}); effort {found['effort_weeks']} weeks.",
            tools=self.assessment_tools())
        self.increment_metric("reasoning_calls")
        opinion = thought.answer or f"no answer ({thought.stopped}: {thought.detail})"
        decision = await self.record_decision(
            f"feasibility:{key}", title=f"Feasibility: {proposal.title}",
            chosen="feasible" if found["feasible"] else "not_feasible",
            options=[("feasible", "can be delivered with the estimated effort"),
                     ("not_feasible", "too risky as proposed")],
            rationale=(f"Risk {found['risk_level']} (score {found['risk_score']}: "
                       f"{', '.join(found['factors']) or 'no risk factors found'}); effort about "
                       f"{found['effort_weeks']} weeks. Reasoner: {opinion}"),
            confidence=0.8 if found["factors"] else 0.6, inputs={"proposal": proposal.model_dump()})
        if found["risk_level"] == "high":
            await self.raise_risk(f"tech-{key_of(key)}", title=f"Technology risk: {proposal.title}"[:200],
                                  description=f"factors: {', '.join(found['factors'])}", category="technology",
                                  likelihood=4, impact=4, mitigations=["spike the riskiest factor first"])
        answer = {"initiative": proposal.initiative, "proposal": key, **found, "opinion": opinion,
                  "decision_id": decision.id}
        self.state.setdefault("assessments", {})[key] = answer
        self.increment_metric("assessments_given")
        if event.type == "tech.feasibility_request":
            self.ctx.reply("tech.feasibility_assessment", answer)
        else:
            self.ctx.publish("tech.assessment", answer)
        return answer

    def assessment_tools(self) -> list[Tool]:
        """What the model may look at before it answers: the ADRs and the risk registry."""

        async def adrs(arguments: dict[str, Any], key: str) -> JSON:
            return [{k: a[k] for k in ("number", "title", "decision")} for a in self.state.get("adrs", [])]

        async def risks(arguments: dict[str, Any], key: str) -> JSON:
            from services.governance import RiskRegistry

            found = await RiskRegistry(self.require_store(), clock=self.ctx.clock).list(status="open", limit=50)
            return [{"id": r.id, "title": r.title, "category": r.category, "score": r.score} for r in found]

        return [tool("cto_list_adrs", "The architecture decision records: number, title and decision.", {}, adrs),
                tool("cto_list_risks", "The open risks in the risk registry, with category and score.", {}, risks)]

    # --- architecture decision records -------------------------------------------------------------------

    @handles("tech.adr.propose")
    async def record_adr(self, event: Event) -> JSON:
        adr = self.parse(AdrProposal, event)
        adrs = self.state.setdefault("adrs", [])
        existing = next((a for a in adrs if a["event_id"] == event.id), None)
        if existing is not None:
            return existing
        number = f"ADR-{len(adrs) + 1:04d}"
        decision = await self.record_decision(
            f"adr:{number}", title=f"{number}: {adr.title}", chosen=adr.decision[:200],
            options=[(adr.decision[:200], "decided"), *((a[:200], "considered") for a in adr.alternatives)],
            rationale=f"Context: {adr.context} Consequences: {adr.consequences or 'none stated'}",
            confidence=0.8, inputs=adr.model_dump())
        record = {"number": number, "title": adr.title, "status": "accepted", "context": adr.context,
                  "decision": adr.decision, "consequences": adr.consequences, "alternatives": adr.alternatives,
                  "decision_id": decision.id, "event_id": event.id, "at": self.ctx.now().isoformat()}
        adrs.append(record)
        self.increment_metric("adrs_recorded")
        self.ctx.publish("tech.adr.recorded", {k: record[k] for k in ("number", "title", "decision_id")})
        return record

