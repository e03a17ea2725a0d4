"""The CFO agent: a budget ledger per department, spend decisions by policy, cost assessments, variance reports.

Spend requests are approved, escalated or denied by the `spending` policy rules for this agent (category = the
department), and escalated too when they would overrun the department's budget. Every verdict is a decision
record with its reason; a denied request leaves the ledger untouched. An overrun raises a risk once per
department and month. The monthly variance report runs on a schedule (`finance.variance_report.due`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.business.base import BusinessAgent, handles, key_of
from agents.purpose_driven import Goal
from aos_core.errors import InvalidEventError
from aos_core.events import ID_PATTERN, Event
from aos_core.ports import JSON

_KEY = ID_PATTERN
_ENTRIES = 50  # ledger entries kept per department (the totals keep everything)
_REPORTS = 12


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetSet(_Input):
    department: str = Field(pattern=_KEY)
    amount: float = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class SpendRequest(_Input):
    id: str | None = Field(default=None, pattern=_KEY, description="the request's id; default the event id")
    department: str = Field(pattern=_KEY)
    amount: float = Field(gt=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    description: str = Field(default="", max_length=500)
    requested_by: str | None = Field(default=None, max_length=200)


class SpendApproval(_Input):
    request_id: str = Field(pattern=_KEY)
    approved: bool
    approver: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=500)


class CostRequest(_Input):
    initiative: str = Field(pattern=_KEY)
    title: str = Field(min_length=1, max_length=200)
    department: str = Field(pattern=_KEY)
    amount: float = Field(ge=0, allow_inf_nan=False)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    description: str = Field(default="", max_length=2000)


class StrategyDecision(_Input):
    model_config = ConfigDict(extra="allow")

    initiative: str = Field(pattern=_KEY)
    chosen: str
    cost: CostRequest | None = None


Outcome = Literal["approve", "escalate", "deny"]  # what a spend request gets
Verdict = Literal["approve", "escalate", "over_budget", "deny"]  # what the rules and the budget say


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


class CFOAgent(BusinessAgent):
    agent_type = "cfo"
    capabilities = ("finance", "budget", "spend-approval", "cost-assessment")
    subscriptions = ("finance.budget.set", "finance.spend_request", "finance.spend_approval",
                     "finance.variance_report.due")
    default_goals: ClassVar[tuple[Goal | dict[str, Any], ...]] = (
        Goal(id="decide-requests", description="decide spend requests", metric="requests_decided", target=20),
        Goal(id="no-overruns", description="no department over budget", metric="departments_over_budget",
             target=0, direction="at_most", baseline=3, measured_over="departments_spending"),
    )

    default_purpose = "Keep spending within budget and every amount accounted for"
    default_adapter = "cfo"

    def initial_state(self) -> dict[str, Any]:
        """An empty ledger, or one opened with config `budgets` ({"product": 1000000}, in `currency`)."""
        currency = str(self.config.get("currency", "USD"))
        ledger = {department: {"budget": float(amount), "spent": 0.0, "currency": currency, "entries": []}
                  for department, amount in dict(self.config.get("budgets", {})).items()}
        return {**super().initial_state(), "ledger": ledger, "requests": {}, "pending": {}, "reports": []}

    # --- the ledger ------------------------------------------------------------------------------------

    def _account(self, department: str) -> dict[str, Any] | None:
        return self.state.setdefault("ledger", {}).get(department)

    @staticmethod
    def _remaining(account: dict[str, Any]) -> float:
        return float(account["budget"]) - float(account["spent"])

    def _post(self, department: str, entry_id: str, amount: float, description: str, kind: str) -> dict[str, Any]:
        account = self._account(department)
        if account is None:
            raise InvalidEventError(f"department {department!r} has no budget")
        account["spent"] = round(float(account["spent"]) + amount, 2)
        account["entries"] = [*account["entries"], {"id": entry_id, "amount": amount, "description": description,
                                                    "kind": kind, "at": self.ctx.now().isoformat()}][-_ENTRIES:]
        return account

    async def _check_overrun(self, department: str, period: str | None = None) -> str | None:
        """Raise the department's overrun risk for the month (default now) if it is over budget; its id, or None."""
        account = self._account(department)
        accounts = self.state["ledger"].values()
        self.record_metric("departments_spending", sum(1 for a in accounts if float(a["spent"]) > 0))
        self.record_metric("departments_over_budget",
                           sum(1 for a in accounts if float(a["spent"]) > float(a["budget"])))
        if account is None or float(account["spent"]) <= float(account["budget"]):
            return None
        period = period or self.ctx.now().strftime("%Y-%m")
        over = float(account["spent"]) - float(account["budget"])
        risk = await self.raise_risk(
            f"budget-overrun-{department}-{period}", title=f"{department} is over budget ({period})",
            description=f"{department} has spent {_money(account['spent'], account['currency'])} of a budget "
                        f"of {_money(account['budget'], account['currency'])}: over by "
                        f"{_money(over, account['currency'])}",
            category="financial", likelihood=5, impact=4 if over > 0.1 * float(account["budget"]) else 3,
            mitigations=["freeze discretionary spend", "re-forecast with the department head"])
        return risk.id

    # --- handlers ----------------------------------------------------------------------------------------

    @handles("finance.budget.set")
    async def set_budget(self, event: Event) -> JSON:
        budget = self.parse(BudgetSet, event)
        ledger = self.state.setdefault("ledger", {})
        account = ledger.setdefault(budget.department, {"budget": 0.0, "spent": 0.0, "currency": budget.currency,
                                                        "entries": []})
        if account["currency"] != budget.currency and account["spent"]:
            raise InvalidEventError(f"{budget.department} keeps its books in {account['currency']}")
        account.update(budget=budget.amount, currency=budget.currency)
        risk = await self._check_overrun(budget.department)
        return {"department": budget.department, "budget": budget.amount, "remaining": self._remaining(account),
                "risk": risk}

    @handles("finance.spend_request")
    async def decide_spend(self, event: Event) -> JSON:
        request = self.parse(SpendRequest, event)
        request_id = request.id or key_of(event.id)
        done = self.state.setdefault("requests", {}).get(request_id)
        if done is not None:  # the same request sent again as a new event: answer as before
            return done
        verdict, rule_id, reason = self._verdict(request.department, request.amount, request.currency)
        outcome: Outcome = "escalate" if verdict == "over_budget" else verdict  # an overrun needs approval
        account = self._account(request.department)
        figures = (f" Budget {_money(account['budget'], account['currency'])}, spent "
                   f"{_money(account['spent'], account['currency'])} before this request." if account else "")
        decision = await self.record_decision(
            f"spend:{request_id}", title=f"Spend request {request_id}: {_money(request.amount, request.currency)} "
                                         f"for {request.department}",
            chosen=outcome, options=[("approve", "post it to the ledger"), ("escalate", "hold it for approval"),
                                     ("deny", "refuse it; the ledger is unchanged")],
            rationale=f"{reason}.{figures}", confidence=1.0 if rule_id else 0.8,
            inputs={"request": request.model_dump(), "rule_id": rule_id})
        risk = None
        if outcome == "approve":
            self._post(request.department, request_id, request.amount, request.description, "spend")
            self.increment_metric("spend_approved_total", request.amount)
            risk = await self._check_overrun(request.department)
        elif outcome == "escalate":
            self.state.setdefault("pending", {})[request_id] = {**request.model_dump(), "id": request_id,
                                                                "reason": reason, "decision_id": decision.id}
        answer = {"request_id": request_id, "outcome": outcome, "reason": reason, "rule_id": rule_id,
                  "decision_id": decision.id, "department": request.department, "amount": request.amount,
                  "risk": risk}
        self.state["requests"][request_id] = answer
        self.increment_metric("requests_decided")
        self.ctx.publish("finance.spend_decided", answer)
        if self.ctx.sender:
            self.ctx.reply("finance.spend_decided", answer)
        return answer

    def _verdict(self, department: str, amount: float, currency: str) -> tuple[Verdict, str | None, str]:
        """approve, escalate, over_budget or deny, the policy rule that applied, and why."""
        account = self._account(department)
        if account is None:
            return "deny", None, f"department {department!r} has no budget"
        if account["currency"] != currency:
            return "deny", None, f"{department} keeps its books in {account['currency']}, not {currency}"
        policy = self.check_spending(amount, category=department, currency=currency)
        if policy.outcome == "deny":
            return "deny", policy.rule_id, f"denied by policy {policy.rule_id}: {policy.reason}"
        remaining = self._remaining(account)
        if amount > remaining:
            return "over_budget", policy.rule_id, (f"{_money(amount, currency)} would overrun the budget of "
                                                f"{department} (remaining {_money(remaining, currency)}): "
                                                "needs approval")
        if policy.outcome == "escalate":
            return "escalate", policy.rule_id, f"escalated by policy {policy.rule_id}: {policy.reason}"
        why = policy.reason if policy.rule_id else "no spending rule applies and the budget covers it"
        return "approve", policy.rule_id, f"approved: {why}"

    @handles("finance.spend_approval")
    async def settle_escalation(self, event: Event) -> JSON:
        approval = self.parse(SpendApproval, event)
        pending = self.state.setdefault("pending", {})
        request = pending.get(approval.request_id)
        if request is None:
            raise InvalidEventError(f"no escalated spend request {approval.request_id!r} is waiting for approval")
        chosen = "approve" if approval.approved else "deny"
        decision = await self.record_decision(
            f"approval:{approval.request_id}", title=f"Escalated spend {approval.request_id} "
                                                     f"{'approved' if approval.approved else 'rejected'}",
            chosen=chosen, options=[("approve", "post it to the ledger"), ("deny", "refuse it")],
            rationale=f"{approval.approver} {'approved' if approval.approved else 'rejected'} the escalation "
                      f"({request['reason']}). {approval.note}".strip(),
            confidence=1.0, inputs={"request": request, "approver": approval.approver})
        del pending[approval.request_id]
        risk = None
        if approval.approved:
            self._post(request["department"], approval.request_id, float(request["amount"]),
                       request.get("description", ""), "approved escalation")
            self.increment_metric("spend_approved_total", float(request["amount"]))
            risk = await self._check_overrun(request["department"])
        answer = {"request_id": approval.request_id, "outcome": chosen, "decision_id": decision.id, "risk": risk,
                  "reason": f"escalation settled by {approval.approver}", "department": request["department"],
                  "amount": request["amount"]}
        self.state["requests"][approval.request_id] = answer
        self.ctx.publish("finance.spend_decided", answer)
        return answer

    @handles("finance.cost_request")
    async def assess_cost(self, event: Event) -> JSON:
        """The CEO asks what an initiative would cost the budget: a verdict, not a spend (the ledger waits
        for the CEO's decision)."""
        request = self.parse(CostRequest, event)
        account = self._account(request.department)
        verdict, rule_id, reason = self._verdict(request.department, request.amount, request.currency)
        opinion = await self.opinion(
            f"Cost assessment of {request.title}: {_money(request.amount, request.currency)} for "
            f"{request.department}. {reason}. {request.description}")
        decision = await self.record_decision(
            f"cost:{request.initiative}", title=f"Cost assessment: {request.title}", chosen=verdict,
            options=[("approve", "affordable within policy"), ("escalate", "affordable, needs executive approval"),
                     ("over_budget", "needs a budget increase"), ("deny", "not fundable")],
            rationale=f"{reason}. Reasoner: {opinion}", confidence=0.9 if rule_id else 0.7,
            inputs={"request": request.model_dump(), "rule_id": rule_id})
        answer = {"initiative": request.initiative, "verdict": verdict, "amount": request.amount,
                  "currency": request.currency, "department": request.department, "reason": reason,
                  "rule_id": rule_id, "remaining_budget": self._remaining(account) if account else None,
                  "opinion": opinion, "decision_id": decision.id}
        self.increment_metric("assessments_given")
        self.ctx.reply("finance.cost_assessment", answer)
        return answer

    @handles("strategy.decision")
    async def commit_initiative(self, event: Event) -> JSON:
        """An initiative the CEO approved is committed to its department's ledger (once)."""
        decision = self.parse(StrategyDecision, event)
        if decision.chosen != "approve" or decision.cost is None or decision.cost.amount == 0:
            return {"initiative": decision.initiative, "committed": False}
        entry_id = f"initiative:{decision.initiative}"
        account = self._account(decision.cost.department)
        if account is None:
            raise InvalidEventError(f"department {decision.cost.department!r} has no budget")
        if any(e["id"] == entry_id for e in account["entries"]):
            return {"initiative": decision.initiative, "committed": True}
        self._post(decision.cost.department, entry_id, decision.cost.amount, decision.cost.title, "initiative")
        risk = await self._check_overrun(decision.cost.department)
        return {"initiative": decision.initiative, "committed": True, "remaining": self._remaining(account),
                "risk": risk}

    @handles("finance.variance_report.due")
    async def variance_report(self, event: Event) -> JSON:
        """Budget against actuals per department; overruns raise risks. Runs monthly on a schedule."""
        period = event.time.strftime("%Y-%m")  # the schedule's slot, also when the run is late
        lines = []
        for department, account in sorted(self.state.setdefault("ledger", {}).items()):
            budget, spent = float(account["budget"]), float(account["spent"])
            used = spent / budget if budget else (1.0 if spent else 0.0)
            status = "over" if spent > budget else "at_risk" if used >= 0.9 else "ok"
            lines.append({"department": department, "budget": budget, "spent": spent, "variance": budget - spent,
                          "used_pct": round(100 * used, 1), "status": status, "currency": account["currency"],
                          "risk": await self._check_overrun(department, period) if status == "over" else None})
        over = [line["department"] for line in lines if line["status"] == "over"]
        summary = (f"Variance {period}: {len(lines)} departments, over budget: {', '.join(over) or 'none'}; at risk: "
                   f"{', '.join(line['department'] for line in lines if line['status'] == 'at_risk') or 'none'}")
        report = {"period": period, "lines": lines, "summary": summary,
                  "opinion": await self.opinion(summary + (" cost overrun risk" if over else " within budget"))}
        reports = self.state.setdefault("reports", [])
        reports[:] = [*[r for r in reports if r["period"] != period][-(_REPORTS - 1):], report]
        self.increment_metric("variance_reports")
        self.ctx.publish("finance.variance_report", report)
        return {"period": period, "departments": len(lines), "over_budget": over}

