"""The CEO agent: objectives and key results, and strategic initiatives decided with the CFO and the CTO.

An initiative (`strategy.initiative`) starts a conversation: its correlation id is the initiative event's id,
and the CEO sends `finance.cost_request` to the CFO and `tech.feasibility_request` to the CTO in it. The
replies come back as messages in the same conversation; when both are in, the CEO decides (approve, defer or
reject) with a rationale that cites both and its reasoner, records the decision and publishes
`strategy.decision`. The replies have a deadline (config `reply_deadline`, default 24h): the initiative starts
a workflow whose durable timer sends `strategy.initiative.deadline` back to the CEO, who then decides `defer`
naming the missing answer ("no feasibility answer from cto within 24h") unless it has decided already.
A weekly summary (`strategy.weekly_summary.due`, on a schedule) reports decisions,
initiatives still waiting and OKR progress.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from agents.business.base import BusinessAgent, handles
from agents.purpose_driven import Goal
from aos_core.errors import InvalidEventError
from aos_core.events import ID_PATTERN, Event
from aos_core.ports import JSON

_KEY = ID_PATTERN
_SUMMARIES = 12
CFO_POINTS = {"approve": 2, "escalate": 1, "over_budget": -1, "deny": -3}  # escalations are the CEO's to approve
CTO_POINTS = {"low": 2, "medium": 1, "high": -2}
OPTIONS = [("approve", "fund and start it"), ("defer", "revisit with more information"), ("reject", "do not pursue it")]
DEFAULT_REPLY_DEADLINE = 24 * 3600  # seconds the CFO and the CTO have to answer (agent config `reply_deadline`)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def reply_deadline_seconds(value: Any) -> float:
    """Seconds from a number or a duration such as `90s`, `15m`, `24h`, `2d` (config `reply_deadline`)."""
    text = str(value).strip().lower()
    try:
        seconds = float(text[:-1]) * _UNITS[text[-1]] if text and text[-1] in _UNITS else float(text)
    except ValueError:
        raise ValueError(f"reply_deadline {value!r} is not a duration (seconds, or 90s, 15m, 24h, 2d)") from None
    if not 0 < seconds <= 365 * 86400:
        raise ValueError(f"reply_deadline {value!r} must be more than 0 and at most a year")
    return seconds


def human_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyResult(_Input):
    id: str = Field(pattern=_KEY)
    description: str = Field(default="", max_length=500)
    target: float = Field(gt=0, allow_inf_nan=False)
    current: float = Field(default=0, ge=0, allow_inf_nan=False)


class Objective(_Input):
    id: str = Field(pattern=_KEY)
    title: str = Field(min_length=1, max_length=200)
    key_results: list[KeyResult] = Field(min_length=1, max_length=10)


class OkrSet(_Input):
    objectives: list[Objective] = Field(min_length=1, max_length=20)


class OkrProgress(_Input):
    key_result: str = Field(pattern=_KEY)
    value: float = Field(ge=0, allow_inf_nan=False)


class Initiative(_Input):
    id: str = Field(pattern=_KEY)
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    department: str = Field(pattern=_KEY)
    cost: float = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    scope: list[str] = Field(default_factory=list, max_length=50)
    objective: str | None = Field(default=None, pattern=_KEY, description="the objective it serves")


class DeadlinePassed(_Input):
    initiative: str = Field(pattern=_KEY)
    within: str = ""


class Reply(BaseModel):
    model_config = ConfigDict(extra="allow")

    initiative: str = Field(pattern=_KEY)
    decision_id: str


class CEOAgent(BusinessAgent):
    agent_type = "ceo"
    capabilities = ("strategy", "okrs", "initiatives")
    subscriptions = ("strategy.initiative", "strategy.okr.set", "strategy.okr.progress",
                     "strategy.weekly_summary.due", "strategy.initiative.deadline")
    default_purpose = "Grow the company by choosing the initiatives worth their cost and risk"
    default_adapter = "ceo"
    default_goals: ClassVar[tuple[Goal | dict[str, Any], ...]] = (
        Goal(id="decide-initiatives", description="decide strategic initiatives", metric="initiatives_decided",
             target=4),
        Goal(id="okrs", description="key results reached on average", metric="okr_progress", target=0.7),
    )

    def initial_state(self) -> dict[str, Any]:
        return {**super().initial_state(), "okrs": [], "initiatives": {}, "summaries": []}

    # --- OKRs -----------------------------------------------------------------------------------------

    @handles("strategy.okr.set")
    async def set_okrs(self, event: Event) -> JSON:
        okrs = self.parse(OkrSet, event)
        self.state["okrs"] = [o.model_dump() for o in okrs.objectives]
        return {"objectives": len(okrs.objectives), "okr_progress": self._okr_progress()}

    @handles("strategy.okr.progress")
    async def update_key_result(self, event: Event) -> JSON:
        update = self.parse(OkrProgress, event)
        for objective in self.state.setdefault("okrs", []):
            for kr in objective["key_results"]:
                if kr["id"] == update.key_result:
                    kr["current"] = update.value
                    return {"key_result": kr["id"], "okr_progress": self._okr_progress()}
        raise InvalidEventError(f"no key result {update.key_result!r}")

    def _okr_progress(self) -> float:
        results = [min(1.0, kr["current"] / kr["target"])
                   for o in self.state.get("okrs", []) for kr in o["key_results"]]
        progress = round(sum(results) / len(results), 3) if results else 0.0
        self.record_metric("okr_progress", progress)
        return progress

    # --- initiatives ----------------------------------------------------------------------------------

    @handles("strategy.initiative")
    async def start_initiative(self, event: Event) -> JSON:
        initiative = self.parse(Initiative, event)
        initiatives = self.state.setdefault("initiatives", {})
        if initiative.id in initiatives:  # sent again: the conversation is already under way or decided
            known = initiatives[initiative.id]
            return {"initiative": initiative.id, "status": known["status"], "conversation": known["conversation"]}
        conversation = event.correlationid or event.id
        cost = {"initiative": initiative.id, "title": initiative.title, "department": initiative.department,
                "amount": initiative.cost, "currency": initiative.currency, "description": initiative.description}
        self.ctx.send(self.peer("cfo"), "finance.cost_request", cost)
        self.ctx.send(self.peer("cto"), "tech.feasibility_request",
                      {"initiative": initiative.id, "title": initiative.title, "description": initiative.description,
                       "scope": initiative.scope})
        seconds = reply_deadline_seconds(self.config.get("reply_deadline", DEFAULT_REPLY_DEADLINE))
        within = human_duration(seconds)
        # The deadline is a durable timer: a workflow waits `seconds` (no event ends it early) and then tells the
        # CEO, who decides `defer` if a reply is still missing; a late timer for a decided initiative is a no-op.
        workflow = self.ctx.start_workflow(f"initiative-{initiative.id}", f"replies to initiative {initiative.id}", [
            {"name": "replies", "action": "wait", "input": {"event": "replied", "timeout": seconds}},
            {"name": "deadline", "action": "event", "depends_on": ["replies"], "input": {
                "type": "strategy.initiative.deadline", "subject": self.agent_id, "correlationid": conversation,
                "data": {"initiative": initiative.id, "within": within}}}])
        initiatives[initiative.id] = {**initiative.model_dump(), "conversation": conversation,
                                      "status": "awaiting_replies", "replies": {},
                                      "started_at": self.ctx.now().isoformat(),
                                      "deadline_at": (self.ctx.now() + timedelta(seconds=seconds)).isoformat(),
                                      "reply_deadline": within, "deadline_workflow": workflow}
        return {"initiative": initiative.id, "status": "awaiting_replies", "conversation": conversation,
                "asked": [self.peer("cfo"), self.peer("cto")], "deadline_workflow": workflow}

    @handles("strategy.initiative.deadline")
    async def deadline_passed(self, event: Event) -> JSON:
        reply = self.parse(DeadlinePassed, event)
        initiative = self.state.setdefault("initiatives", {}).get(reply.initiative)
        if initiative is None:
            raise InvalidEventError(f"no initiative {reply.initiative!r} is waiting for replies")
        if initiative["status"] != "awaiting_replies":  # both replies came in time
            return {"initiative": reply.initiative, "status": initiative["status"]}
        missing = sorted({"cfo", "cto"} - set(initiative["replies"]))
        rationale = "; ".join(f"no {'cost' if role == 'cfo' else 'feasibility'} answer from {self.peer(role)} within "
                              f"{initiative.get('reply_deadline', reply.within)}" for role in missing)
        decision = await self.record_decision(
            f"initiative:{initiative['id']}", title=f"Initiative: {initiative['title']}", chosen="defer",
            options=OPTIONS, rationale=f"{rationale}. Deferred until the answers are in.", confidence=0.5,
            inputs={"initiative": initiative["id"], "missing": missing, "replies": initiative["replies"]})
        return self._announce(initiative, "defer", decision.id, f"{rationale}. Deferred until the answers are in.")

    @handles("finance.cost_assessment", "tech.feasibility_assessment")
    async def take_reply(self, event: Event) -> JSON:
        reply = self.parse(Reply, event)
        initiative = self.state.setdefault("initiatives", {}).get(reply.initiative)
        if initiative is None:
            raise InvalidEventError(f"no initiative {reply.initiative!r} is waiting for replies")
        if event.correlationid != initiative["conversation"]:  # a reply belongs to the conversation that asked
            raise InvalidEventError(f"{event.type} for {reply.initiative!r} is not in its conversation "
                                    f"{initiative['conversation']!r}")
        role = "cfo" if event.type == "finance.cost_assessment" else "cto"
        if initiative["status"] != "awaiting_replies":
            return {"initiative": reply.initiative, "status": initiative["status"]}
        initiative["replies"][role] = {**event.data, "from": self.ctx.sender}
        if len(initiative["replies"]) < 2:
            return {"initiative": reply.initiative, "status": "awaiting_replies",
                    "have": sorted(initiative["replies"])}
        return await self._decide(initiative)

    async def _decide(self, initiative: dict[str, Any]) -> JSON:
        cfo, cto = initiative["replies"]["cfo"], initiative["replies"]["cto"]
        opinion = await self.opinion(
            f"Initiative {initiative['title']}: {initiative['description']}. Finance says {cfo['verdict']}: "
            f"{cfo['reason']}. Technology says risk {cto['risk_level']}, effort {cto['effort_weeks']} weeks"
            f"{'' if cto['feasible'] else ', not feasible'}.")
        verdict = opinion.split("recommendation: ", 1)[-1].split(" ", 1)[0] if "recommendation: " in opinion else ""
        points = (CFO_POINTS.get(cfo["verdict"], -3) + CTO_POINTS.get(cto["risk_level"], -2)
                  + (0 if cto["feasible"] else -3) + {"proceed": 1, "hold": -1}.get(verdict, 0))
        chosen = "approve" if points >= 2 else "defer" if points >= 0 else "reject"
        money = f"{cfo['amount']:,.2f} {cfo['currency']}"
        rationale = (
            f"CFO (decision {cfo['decision_id']}): {cfo['verdict']} for {money} from {cfo['department']}: "
            f"{cfo['reason']}. "
            f"CTO (decision {cto['decision_id']}): {'feasible' if cto['feasible'] else 'not feasible'}, risk "
            f"{cto['risk_level']} ({', '.join(cto['factors']) or 'no risk factors'}), effort {cto['effort_weeks']} "
            f"weeks. Reasoner: {opinion}. Score {points:+d}: {chosen}.")
        decision = await self.record_decision(
            f"initiative:{initiative['id']}", title=f"Initiative: {initiative['title']}", chosen=chosen,
            options=OPTIONS, rationale=rationale, confidence=min(0.95, 0.5 + 0.1 * abs(points)),
            inputs={"initiative": initiative["id"], "cfo": cfo, "cto": cto})
        return self._announce(initiative, chosen, decision.id, rationale, effort_weeks=cto["effort_weeks"],
                              risk_level=cto["risk_level"])

    def _announce(self, initiative: dict[str, Any], chosen: str, decision_id: str, rationale: str,
                  **facts: Any) -> JSON:
        initiative.update(status="decided", decision=chosen, decision_id=decision_id,
                          decided_at=self.ctx.now().isoformat())
        self.increment_metric("initiatives_decided")
        if chosen == "approve":
            self.increment_metric("initiatives_approved")
        announcement = {"initiative": initiative["id"], "title": initiative["title"], "chosen": chosen,
                        "rationale": rationale, "decision_id": decision_id,
                        "conversation": initiative["conversation"],
                        "cost": {"initiative": initiative["id"], "title": initiative["title"],
                                 "department": initiative["department"], "amount": initiative["cost"],
                                 "currency": initiative["currency"]}, **facts}
        self.ctx.publish("strategy.decision", announcement)
        return announcement

    # --- the weekly summary ---------------------------------------------------------------------------

    @handles("strategy.weekly_summary.due")
    async def weekly_summary(self, event: Event) -> JSON:
        now = event.time  # the schedule's slot: a late or caught-up run still reports its own week
        week, since = now.strftime("%G-W%V"), (now - timedelta(days=7)).isoformat()
        initiatives = self.state.setdefault("initiatives", {}).values()
        summary = {
            "week": week,
            "decided": [{"initiative": i["id"], "chosen": i["decision"], "decision_id": i["decision_id"]}
                        for i in initiatives if i["status"] == "decided" and i["decided_at"] >= since],
            "waiting": [{"initiative": i["id"], "missing": sorted({"cfo", "cto"} - set(i["replies"]))}
                        for i in initiatives if i["status"] == "awaiting_replies"],
            "okr_progress": self._okr_progress(),
            "goals": self.evaluate_progress()["overall"],
        }
        summaries = self.state.setdefault("summaries", [])
        summaries[:] = [*[s for s in summaries if s["week"] != week][-(_SUMMARIES - 1):], summary]
        self.increment_metric("summaries_published")
        self.ctx.publish("strategy.weekly_summary", summary)
        return {"week": week, "decided": len(summary["decided"]), "waiting": len(summary["waiting"])}
