"""BusinessAgent: a purpose-driven agent that takes governed decisions and talks to its peers by message.

What the CEO, CFO and CTO share: handlers picked by event type (`@handles("finance.spend_request")`), peers
addressed by role (config `peers`, default the role name), policy checks, decision records and risks. Records
written as a side effect get ids derived from the event being handled, so a redelivered or retried event
finds the first record instead of writing a second one.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ValidationError

from agents.purpose_driven import PurposeDrivenAgent
from aos_core.errors import InvalidEventError
from aos_core.events import Event
from aos_core.ports import JSON, PolicyDecision, PolicyRequest

if TYPE_CHECKING:
    from services.governance import DecisionRecord, Risk

Handler = Callable[[Any, Event], Awaitable[JSON]]
Model = TypeVar("Model", bound=BaseModel)
_MEMORY = 20  # recent decisions an agent keeps in its own state


def key_of(value: str) -> str:
    """`value` as a record key (request, risk and proposal ids): kept when it already is one, else made one,
    with a short hash so two different values never meet on the same key."""
    slug = re.sub(r"[^a-z0-9_.-]+", "-", value.lower()).strip("-._")[:40]
    if slug == value and len(value) <= 63:
        return value
    return f"{slug or 'x'}-{hashlib.sha256(value.encode()).hexdigest()[:12]}"


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of these event types (exact names)."""

    def mark(method: Handler) -> Handler:
        method.__handles__ = event_types  # type: ignore[attr-defined]
        return method

    return mark


class BusinessAgent(PurposeDrivenAgent):
    """Dispatches each event to its `@handles` method; events of other types are ignored (and say so)."""

    _handlers: ClassVar[dict[str, str]] = {}

    def __init__(self, agent_id: str | None = None, purpose: str = "", **kwargs: Any) -> None:
        """`CEOAgent()` is the agent `ceo`: the id defaults to the type, as there is usually one of each."""
        super().__init__(agent_id or self.agent_type, purpose, **kwargs)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for event_type in getattr(member, "__handles__", ()):
                    handlers[event_type] = name
        cls._handlers = handlers

    @classmethod
    def handled_types(cls) -> list[str]:
        return sorted(cls._handlers)

    async def handle_event(self, event: Event) -> JSON:
        name = self._handlers.get(event.type)
        if name is None:
            return {"ignored": event.type}
        result: JSON = await getattr(self, name)(event)
        return result

    # --- inputs and peers ------------------------------------------------------------------------------

    @staticmethod
    def parse(model: type[Model], event: Event) -> Model:
        """The event's data as `model`; InvalidEventError (the event is rejected, nothing changes) if it is not."""
        try:
            return model.model_validate(event.data if event.data is not None else {})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}" for e in exc.errors())
            raise InvalidEventError(f"{event.type}: {problems}") from None

    def peer(self, role: str) -> str:
        """The agent id playing `role` (config `peers`, e.g. {"cfo": "cfo-emea"}; default the role itself)."""
        return str(self.config.get("peers", {}).get(role, role))

    # --- governance --------------------------------------------------------------------------------------

    def check_spending(self, amount: float, *, category: str, currency: str | None = None) -> PolicyDecision:
        """The spending rules' verdict (approve, escalate or deny) for this agent; `allow` when none applies."""
        policy = self.ctx.policy
        if policy is None:
            return PolicyDecision("allow")
        return policy.evaluate(PolicyRequest("spend", caller=f"agent:{self.agent_id}", agent_id=self.agent_id,
                                             agent_type=self.agent_type, amount=amount, currency=currency,
                                             category=category, subject=f"agent/{self.agent_id}"))

    async def record_decision(self, key: str, *, title: str, chosen: str, options: list[tuple[str, str]],
                              rationale: str, confidence: float, inputs: dict[str, Any]) -> DecisionRecord:
        """Record a decision (audited as `decision.taken`, readable at /api/decisions/{id}) and remember it.

        `key` names the decision within the event being handled; it makes the record's id stable.
        """
        from services.governance import DecisionCreate, DecisionLog, DecisionOption

        ctx = self.ctx
        log = DecisionLog(self.require_store(), audit=ctx.audit, clock=ctx.clock)
        record = await log.record(
            DecisionCreate(agent_id=self.agent_id, title=title, chosen=chosen, rationale=rationale,
                           confidence=round(max(0.0, min(1.0, confidence)), 3), inputs=inputs,
                           options=[DecisionOption(name=n, description=d) for n, d in options],
                           event_id=ctx.event.id, correlation_id=ctx.event.correlationid or ctx.event.id),
            decision_id=ctx.stable_id(f"decision:{key}"))
        recent = self.state.setdefault("decisions", [])
        if all(d["id"] != record.id for d in recent):
            recent.append({"id": record.id, "title": title, "chosen": chosen, "at": record.time.isoformat()})
            del recent[:-_MEMORY]
        return record

    async def raise_risk(self, risk_id: str, *, title: str, description: str, category: str, likelihood: int,
                         impact: int, mitigations: list[str] | None = None) -> Risk:
        """Raise a risk this agent owns (audited as `risk.raised`); the same `risk_id` is raised only once."""
        from services.governance import RiskCreate, RiskRegistry

        ctx = self.ctx
        registry = RiskRegistry(self.require_store(), clock=ctx.clock, audit=ctx.audit)
        fields = RiskCreate(title=title, description=description, category=category, likelihood=likelihood,
                            impact=impact, owner=self.agent_id, mitigations=mitigations or [])
        return await registry.create(fields, actor=f"agent:{self.agent_id}", risk_id=risk_id)

    async def opinion(self, prompt: str) -> str:
        """What the agent's reasoner (its LoRA adapter; the rule-based one locally) says about `prompt`."""
        result = await self.reason(prompt)
        self.increment_metric("reasoning_calls")
        return result.text
