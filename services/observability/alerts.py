"""Threshold alerts from config (`governance.alerts`), evaluated by the timer, raised as events and audited.

Rule kinds:
- `failure_rate`: failed / processed events since the last evaluation above `threshold` (0-1), once at least
  `min_events` were processed.
- `dead_letters`: dead-lettered messages (all subscriptions, or those matching `subscription`) above `threshold`.
- `agent_failed`: an agent matching `agent` (glob) is in the Failed state.
- `breaker_open`: a circuit breaker matching `breaker` (glob) is open.

An alert fires when its condition starts to hold (`aos.alert.raised`) and resolves when it stops
(`aos.alert.resolved`), not on every tick, so subscribers get one event per incident. With a store, which
alerts are active is one document (`alerts/active`) changed under its ETag, so a worker that takes over the
timer, or two that evaluate at once, raise and resolve each incident once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from aos_core.clock import SystemClock, UuidIds
from aos_core.errors import ConfigError
from aos_core.etag import update_document
from aos_core.events import Event
from aos_core.ports import JSON, AuditLog, Clock, IdFactory, StateStore

ALERT_RAISED = "aos.alert.raised"
ALERT_RESOLVED = "aos.alert.resolved"
ACTIVE_KEY = "alerts/active"


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
    severity: Literal["info", "warning", "error", "critical"] = "error"
    description: str = ""


class FailureRateRule(_Rule):
    kind: Literal["failure_rate"]
    threshold: float = Field(gt=0, le=1)
    min_events: int = Field(default=10, ge=1)


class DeadLettersRule(_Rule):
    kind: Literal["dead_letters"]
    threshold: int = Field(default=0, ge=0)
    subscription: str = "*"  # glob over "topic/subscription"


class AgentFailedRule(_Rule):
    kind: Literal["agent_failed"]
    agent: str = "*"


class BreakerOpenRule(_Rule):
    kind: Literal["breaker_open"]
    breaker: str = "*"


AlertRule = Annotated[FailureRateRule | DeadLettersRule | AgentFailedRule | BreakerOpenRule,
                      Field(discriminator="kind")]
_RULES = TypeAdapter(list[AlertRule])


def load_alert_rules(raw: Sequence[Mapping[str, Any]], where: str = "governance.alerts") -> list[AlertRule]:
    """Validate alert rules from config; ConfigError names the bad rule and field."""
    try:
        rules = _RULES.validate_python(list(raw))
    except ValidationError as exc:
        raise ConfigError("; ".join(f"{where}[{e['loc'][0]}]{''.join(f'.{p}' for p in e['loc'][2:])}: {e['msg']}"
                                    for e in exc.errors())) from None
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: alert rule ids must be unique")
    return rules


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """What the timer observed since the last evaluation (counts are deltas, states are current)."""

    events_processed: int = 0
    events_failed: int = 0
    dead_letters: Mapping[str, int] = field(default_factory=dict)  # "topic/subscription" -> depth
    agents: Mapping[str, str] = field(default_factory=dict)  # agent id -> lifecycle state
    breakers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # aos.breakers.states()


class AlertEvaluator:
    """Evaluates rules against snapshots; remembers which alerts are active to raise and resolve once each."""

    def __init__(self, rules: Sequence[AlertRule], *, audit: AuditLog | None = None, clock: Clock | None = None,
                 ids: IdFactory | None = None, store: StateStore | None = None) -> None:
        self.rules = list(rules)
        self.store = store
        self.audit = audit
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()
        self.active: dict[tuple[str, str], dict[str, Any]] = {}  # (rule id, key) -> details

    @classmethod
    def from_config(cls, alerts: Sequence[Mapping[str, Any]], **kwargs: Any) -> AlertEvaluator:
        return cls(load_alert_rules(alerts), **kwargs)

    def _breaches(self, rule: AlertRule, snap: HealthSnapshot) -> dict[str, dict[str, Any]]:
        """{key: details} for every instance of the condition that holds now."""
        if isinstance(rule, FailureRateRule):
            if snap.events_processed >= rule.min_events:
                rate = snap.events_failed / snap.events_processed
                if rate > rule.threshold:
                    return {"*": {"failure_rate": round(rate, 4), "failed": snap.events_failed,
                                  "processed": snap.events_processed, "threshold": rule.threshold}}
            return {}
        if isinstance(rule, DeadLettersRule):
            depth = sum(n for name, n in snap.dead_letters.items() if fnmatchcase(name, rule.subscription))
            return {"*": {"dead_letters": depth, "threshold": rule.threshold}} if depth > rule.threshold else {}
        if isinstance(rule, AgentFailedRule):
            return {agent: {"agent_id": agent, "state": state} for agent, state in snap.agents.items()
                    if state.lower() == "failed" and fnmatchcase(agent, rule.agent)}
        return {name: {"breaker": name, "retry_after": s.get("retry_after")} for name, s in snap.breakers.items()
                if s.get("state") == "open" and fnmatchcase(name, rule.breaker)}

    async def evaluate(self, snapshot: HealthSnapshot) -> list[Event]:
        """The alert events to publish now (raised and resolved); each is audited as `alert.raised/resolved`."""
        breaching = {rule.id: self._breaches(rule, snapshot) for rule in self.rules}
        if self.store is None:
            changes = self._changes(self.active, breaching)
        else:  # only the writer that wins the document's ETag announces a change
            def change(value: JSON | None) -> tuple[JSON, list[tuple[str, str, str, dict[str, Any]]]]:
                active = {(a["rule"], a["key"]): a["details"] for a in (value or {}).get("active", [])}
                found = self._changes(active, breaching)
                return {"active": [{"rule": r, "key": k, "details": d} for (r, k), d in active.items()]}, found

            changes = await update_document(self.store, ACTIVE_KEY, change)
        rules = {rule.id: rule for rule in self.rules}
        return [await self._emit(kind, rules[rule_id], key, details) for kind, rule_id, key, details in changes]

    def _changes(self, active: dict[tuple[str, str], dict[str, Any]], breaching: dict[str, dict[str, dict[str, Any]]]
                 ) -> list[tuple[str, str, str, dict[str, Any]]]:
        """Apply what breaches now to `active` (in place); the alerts raised and resolved, in rule order."""
        out = []
        for rule in self.rules:
            now_breaching = breaching[rule.id]
            for key, details in now_breaching.items():
                if (rule.id, key) not in active:
                    active[(rule.id, key)] = details
                    out.append((ALERT_RAISED, rule.id, key, details))
            for (rule_id, key), details in list(active.items()):
                if rule_id == rule.id and key not in now_breaching:
                    del active[(rule_id, key)]
                    out.append((ALERT_RESOLVED, rule.id, key, details))
        return out

    async def _emit(self, event_type: str, rule: AlertRule, key: str, details: dict[str, Any]) -> Event:
        data = {"rule_id": rule.id, "kind": rule.kind, "severity": rule.severity, "key": key,
                "description": rule.description, **details}
        subject = rule.id if key == "*" else f"{rule.id}/{key}"
        if self.audit is not None:
            entry = await self.audit.append("aos:alerts", event_type.removeprefix("aos."), f"alert/{subject}", data)
            data["audit_seq"] = entry.seq
        return Event(id=self.ids.new_id(), source="aos/alerts", type=event_type, subject=subject,
                     time=self.clock.now(), data=data)


class KernelAlerts:
    """The timer's alert pass over one kernel: a HealthSnapshot of what changed since the last pass, evaluated.

    Counts are this worker's (each Functions worker evaluates what it processed); agent states come from the
    registry, dead letters from the poison records the Service Bus triggers keep, breakers from this process.
    """

    def __init__(self, evaluator: AlertEvaluator) -> None:
        self.evaluator = evaluator
        self._last = (0, 0)

    async def __call__(self, aos: Any) -> list[Event]:
        processed, failed = aos.counts["processed"], aos.counts["failed"]
        last_processed, last_failed = self._last
        self._last = (processed, failed)
        agents = {r["id"]: r["state"] for r in await aos.list_agents(limit=100_000)}
        from aos_core.event_records import DEADLETTERS

        poison = await aos.store.list(DEADLETTERS, limit=100_000)
        dead: dict[str, int] = {}
        for doc in poison:
            name = f"{doc.value.get('topic', '?')}/runtime"
            dead[name] = dead.get(name, 0) + 1
        snapshot = HealthSnapshot(events_processed=processed - last_processed, events_failed=failed - last_failed,
                                  dead_letters=dead, agents=agents, breakers=aos.breakers.states())
        return await self.evaluator.evaluate(snapshot)
