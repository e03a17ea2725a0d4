"""Declarative policies from config (`governance.policies`), evaluated before an action.

Rule kinds (each has an `id` that denials and decisions name):

- `event_types`: agents matching `agent` (glob on agent id or type) may only receive event types matching
  one of `allow` (globs), and never one matching `deny`.
- `roles`: actions matching `action` need a caller holding one of `any_of`.
- `rate_limit`: at most `limit` actions matching `action` per `per` seconds for each caller matching `caller`
  (token bucket on the Clock; per process, so on Functions each worker enforces its own share).
- `spending`: for agents matching `agent` (and `category`), an amount up to `approval_threshold` is
  approved, up to `limit` is escalated for a person's approval, above `limit` is denied.
- `tools`: agents matching `agent` may only call tools (model-facing names, `kb__search`, `aos_send_message`)
  matching one of `allow`, and never one matching `deny`; a denied call's result tells the model so.

A denial raises PolicyDenied (a 403 problem body with the rule id and reason) and is audited.

Every event is checked once per target, so the engine remembers its decisions (all but rate limits, which
are counted on every call) by what they depend on: the request without its caller and subject. The rules
are a tuple and the memory is dropped when they are replaced, so a decision never outlives its rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from aos_core.clock import SystemClock
from aos_core.errors import ConfigError, PolicyDenied
from aos_core.etag import update_document
from aos_core.ports import AuditLog, Clock, PolicyDecision, PolicyRequest, StateStore

RULE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RULE_ID)
    description: str = ""


class _AllowDenyRule(_Rule):
    """Agents matching `agent` may only use values matching one of `allow`, and never one matching `deny`."""

    agent: str = "*"
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    verb: ClassVar[str]

    def refusal(self, request: PolicyRequest, value: str | None) -> PolicyDecision | None:
        if value is None or not _match(self.agent, request.agent_id, request.agent_type):
            return None
        if any(fnmatchcase(value, p) for p in self.deny) or not any(fnmatchcase(value, p) for p in self.allow):
            return PolicyDecision("deny", self.id, f"agent {request.agent_id or request.agent_type!r} may not "
                                                   f"{self.verb} {value!r}")
        return None


class EventTypesRule(_AllowDenyRule):
    kind: Literal["event_types"]
    verb: ClassVar[str] = "receive events of type"


class RolesRule(_Rule):
    kind: Literal["roles"]
    action: str = "*"
    any_of: tuple[str, ...] = Field(min_length=1)


class RateLimitRule(_Rule):
    kind: Literal["rate_limit"]
    action: str = "*"
    caller: str = "*"
    limit: int = Field(ge=1)
    per: float = Field(gt=0)


class SpendingRule(_Rule):
    kind: Literal["spending"]
    agent: str = "*"
    category: str = "*"
    currency: str | None = None  # None: any currency
    approval_threshold: float = Field(ge=0)
    limit: float = Field(ge=0)


class ToolsRule(_AllowDenyRule):
    kind: Literal["tools"]
    verb: ClassVar[str] = "call the tool"


Rule = Annotated[EventTypesRule | RolesRule | RateLimitRule | SpendingRule | ToolsRule, Field(discriminator="kind")]
_RULES = TypeAdapter(list[Rule])


def load_rules(raw: Sequence[Mapping[str, Any]], where: str = "governance.policies") -> list[Rule]:
    """Validate rule objects from config; ConfigError names the bad rule and field."""
    try:
        rules = _RULES.validate_python(list(raw))
    except ValidationError as exc:
        problems = "; ".join(f"{where}[{e['loc'][0]}]{''.join(f'.{p}' for p in e['loc'][2:])}: {e['msg']}"
                             for e in exc.errors())
        raise ConfigError(problems) from None
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(f"{where}: rule id {rule.id!r} is used twice")
        seen.add(rule.id)
        if isinstance(rule, SpendingRule) and rule.limit < rule.approval_threshold:
            raise ConfigError(f"{where}: rule {rule.id!r}: limit is below approval_threshold")
    return rules


def _match(pattern: str, *values: str | None) -> bool:
    return any(v is not None and fnmatchcase(v, pattern) for v in values)


RATE_PREFIX = "governance/rate-limits/"  # StateStore documents: one token bucket per rule and caller
_REMEMBERED = 4096  # decisions kept; requests differ by agent and event type, which are few in practice


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class PolicyEngine:
    """Evaluates the rules; `enforce` also audits denials and raises PolicyDenied."""

    rules: Sequence[Rule]
    clock: Clock = field(default_factory=SystemClock)
    audit: AuditLog | None = None
    store: StateStore | None = None  # where `enforce` keeps rate-limit buckets, shared by every worker
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _decided: dict[tuple[Any, ...], PolicyDecision] = field(default_factory=dict)
    _rated: dict[tuple[str, str], list[RateLimitRule]] = field(default_factory=dict)
    _remembered_for: Sequence[Rule] = ()  # the rules `_decided` and `_rated` were computed with

    def __post_init__(self) -> None:
        self.rules = tuple(self.rules)  # not changed in place: replacing them is what drops the memory

    @classmethod
    def from_config(cls, policies: Iterable[Mapping[str, Any]], *, clock: Clock | None = None,
                    audit: AuditLog | None = None, store: StateStore | None = None) -> PolicyEngine:
        """An engine for `config.governance.policies`; with `store`, rate limits count across workers."""
        return cls(load_rules(list(policies)), clock or SystemClock(), audit, store)

    def evaluate(self, request: PolicyRequest) -> PolicyDecision:
        """The decision for `request`; rate limits spend a token (of this process) only when nothing else denies."""
        decision = self._decide(request)
        if decision.outcome == "deny":
            return decision
        for rule in self._rate_rules(request):
            if not self._take(rule, request.caller or "anonymous"):
                return _rate_denied(rule, request)
        return decision

    async def _evaluate_shared(self, request: PolicyRequest) -> PolicyDecision:
        decision = self._decide(request)
        if decision.outcome == "deny" or self.store is None:
            return decision
        for rule in self._rate_rules(request):
            if not await self._take_shared(self.store, rule, request.caller or "anonymous"):
                return _rate_denied(rule, request)
        return decision

    def _rate_rules(self, request: PolicyRequest) -> list[RateLimitRule]:
        self._check_memory()
        key = (request.action, request.caller or "anonymous")
        found = self._rated.get(key)
        if found is None:
            if len(self._rated) >= _REMEMBERED:
                self._rated.clear()
            found = self._rated[key] = [rule for rule in self.rules if isinstance(rule, RateLimitRule)
                                        and _match(rule.action, key[0]) and _match(rule.caller, key[1])]
        return found

    def _decide(self, request: PolicyRequest) -> PolicyDecision:
        """Every rule but the rate limits, remembered by what it depends on."""
        self._check_memory()
        key = (request.action, request.roles, request.agent_id, request.agent_type, request.event_type,
               request.tool, request.amount, request.currency, request.category)
        decision = self._decided.get(key)
        if decision is None:
            if len(self._decided) >= _REMEMBERED:
                self._decided.clear()
            decision = self._decided[key] = self._decide_now(request)
        return decision

    def _check_memory(self) -> None:
        if self._remembered_for is not self.rules:  # the rules were replaced since
            self.rules = tuple(self.rules)
            self._decided.clear()
            self._rated.clear()
            self._remembered_for = self.rules

    def _decide_now(self, request: PolicyRequest) -> PolicyDecision:
        for rule in self.rules:
            if isinstance(rule, RolesRule) and _match(rule.action, request.action):
                if not request.roles & set(rule.any_of):
                    return PolicyDecision("deny", rule.id, f"action {request.action!r} needs one of the roles "
                                                           f"{', '.join(rule.any_of)}")
            elif isinstance(rule, _AllowDenyRule):
                refused = rule.refusal(request, request.event_type if isinstance(rule, EventTypesRule)
                                       else request.tool)
                if refused is not None:
                    return refused
        return self._spending(request) if request.amount is not None else PolicyDecision("allow")

    def _spending(self, request: PolicyRequest) -> PolicyDecision:
        amount = float(request.amount or 0)
        if amount < 0:
            return PolicyDecision("deny", "spending", "a spending amount must not be negative")
        for rule in self.rules:
            if not isinstance(rule, SpendingRule) or not _match(rule.agent, request.agent_id, request.agent_type):
                continue
            if not fnmatchcase(request.category or "", rule.category):
                continue
            if rule.currency is not None and request.currency != rule.currency:
                continue
            money = f"{amount:,.2f}{' ' + request.currency if request.currency else ''}"
            if amount <= rule.approval_threshold:
                return PolicyDecision("approve", rule.id, f"{money} is within the approval threshold "
                                                          f"{rule.approval_threshold:,.2f}")
            if amount <= rule.limit:
                return PolicyDecision("escalate", rule.id, f"{money} is above the approval threshold "
                                                           f"{rule.approval_threshold:,.2f}: needs approval")
            return PolicyDecision("deny", rule.id, f"{money} is above the spending limit {rule.limit:,.2f}")
        return PolicyDecision("allow")

    def _take(self, rule: RateLimitRule, caller: str) -> bool:
        now = self.clock.monotonic()
        bucket = self._buckets.get((rule.id, caller))
        if bucket is None:
            bucket = self._buckets[(rule.id, caller)] = _Bucket(float(rule.limit), now)
        bucket.tokens = min(float(rule.limit), bucket.tokens + (now - bucket.at) * rule.limit / rule.per)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    async def _take_shared(self, store: StateStore, rule: RateLimitRule, caller: str) -> bool:
        # The bucket is one document per rule and caller, changed under its ETag by whichever worker is asked;
        # time is the clock's wall time, the one every worker shares (monotonic time is per process).
        now = self.clock.now().timestamp()

        def spend(value: Any) -> tuple[Any, bool]:
            tokens, at = (float(value["tokens"]), float(value["at"])) if value else (float(rule.limit), now)
            tokens = min(float(rule.limit), tokens + max(0.0, now - at) * rule.limit / rule.per)
            taken = tokens >= 1
            return {"tokens": tokens - 1 if taken else tokens, "at": max(now, at)}, taken

        return await update_document(store, f"{RATE_PREFIX}{quote(rule.id, safe='')}/{quote(caller, safe='')}", spend)

    async def enforce(self, request: PolicyRequest) -> PolicyDecision:
        """Evaluate; on deny append a `policy.denied` audit entry and raise PolicyDenied naming the rule.

        An escalation is returned (and audited as `policy.escalated`) for the caller to route for approval.
        With a store, rate limits are counted there, so a limit holds across every worker.
        """
        decision = await self._evaluate_shared(request) if self.store is not None else self.evaluate(request)
        if decision.outcome in ("deny", "escalate"):
            seq = await self._audit(request, decision)
            if decision.outcome == "deny":
                raise PolicyDenied(decision.rule_id or "policy", decision.reason, seq)
        return decision

    async def _audit(self, request: PolicyRequest, decision: PolicyDecision) -> int | None:
        if self.audit is None:
            return None
        subject = request.subject or (f"agent/{request.agent_id}" if request.agent_id else request.action)
        payload = {"request": {k: v for k, v in _request_dict(request).items() if v is not None}, **decision.to_dict()}
        action = "policy.escalated" if decision.outcome == "escalate" else "policy.denied"
        entry = await self.audit.append(request.caller or "anonymous", action, subject, payload)
        return entry.seq


def _rate_denied(rule: RateLimitRule, request: PolicyRequest) -> PolicyDecision:
    return PolicyDecision("deny", rule.id, f"rate limit of {rule.limit} per {rule.per:g} s exceeded for "
                                           f"{request.caller or 'anonymous'}")


def _request_dict(request: PolicyRequest) -> dict[str, Any]:
    return {"action": request.action, "caller": request.caller, "roles": sorted(request.roles) or None,
            "agent_id": request.agent_id, "agent_type": request.agent_type, "event_type": request.event_type,
            "amount": request.amount, "currency": request.currency, "category": request.category,
            "tool": request.tool}
