from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos_core import AOSConfig
from aos_core.errors import ConfigError
from aos_core.testing import ManualClock
from services.governance.audit import SqliteAuditLog
from services.governance.policy import PolicyDenied, PolicyEngine, PolicyRequest, load_rules

POLICIES = [
    {"id": "cfo-events", "kind": "event_types", "agent": "cfo", "allow": ["budget.*", "invoice.*"],
     "deny": ["budget.delete"]},
    {"id": "admin-only-terminate", "kind": "roles", "action": "agent.terminate", "any_of": ["admin"]},
    {"id": "api-rate", "kind": "rate_limit", "action": "event.post", "caller": "*", "limit": 3, "per": 60},
    {"id": "cfo-spend", "kind": "spending", "agent": "cfo", "currency": "USD", "approval_threshold": 10_000,
     "limit": 100_000},
]


@pytest.fixture
async def audit(tmp_path: Path) -> AsyncIterator[SqliteAuditLog]:
    log = SqliteAuditLog(tmp_path / "audit.db", clock=ManualClock())
    yield log
    await log.close()


def test_rules_load_from_config() -> None:
    config = AOSConfig(governance={"policies": POLICIES})
    engine = PolicyEngine.from_config(config.governance.policies)
    assert [r.id for r in engine.rules] == ["cfo-events", "admin-only-terminate", "api-rate", "cfo-spend"]


@pytest.mark.parametrize(("rules", "message"), [
    ([{"id": "x", "kind": "spending", "approval_threshold": "lots", "limit": 1}],
     r"governance.policies\[0\].approval_threshold"),
    ([{"id": "x", "kind": "nope"}], r"governance.policies\[0\]"),
    ([{"id": "x", "kind": "roles", "any_of": ["a"]}, {"id": "x", "kind": "roles", "any_of": ["b"]}], "used twice"),
    ([{"id": "x", "kind": "spending", "approval_threshold": 10, "limit": 5}], "below approval_threshold"),
    ([{"id": "x", "kind": "roles", "any_of": ["a"], "typo": 1}], "typo"),
])
def test_bad_rules_are_config_errors(rules: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_rules(rules)


async def test_event_type_denial_is_audited_and_names_the_rule(audit: SqliteAuditLog) -> None:
    engine = PolicyEngine.from_config(POLICIES, clock=ManualClock(), audit=audit)
    ok = await engine.enforce(PolicyRequest("event.deliver", agent_id="cfo", event_type="budget.request"))
    assert ok.outcome == "allow"
    with pytest.raises(PolicyDenied) as info:
        await engine.enforce(PolicyRequest("event.deliver", caller="api:bob", agent_id="cfo",
                                           event_type="marketing.campaign"))
    assert info.value.rule_id == "cfo-events"
    problem = info.value.problem()
    assert problem["status"] == 403 and problem["rule_id"] == "cfo-events"
    assert "marketing.campaign" in problem["detail"]
    [entry] = await audit.entries(action="policy.denied")
    assert (entry.seq, entry.actor, entry.subject) == (info.value.audit_seq, "api:bob", "agent/cfo")
    assert entry.payload["rule_id"] == "cfo-events"
    with pytest.raises(PolicyDenied, match="cfo-events"):
        await engine.enforce(PolicyRequest("event.deliver", agent_id="cfo", event_type="budget.delete"))
    # other agents are not restricted by the cfo rule
    assert engine.evaluate(PolicyRequest("event.deliver", agent_id="ceo", event_type="marketing.x")).allowed


async def test_tool_rules_limit_which_tools_an_agents_model_may_call(audit: SqliteAuditLog) -> None:
    engine = PolicyEngine.from_config([{"id": "cto-tools", "kind": "tools", "agent": "cto",
                                        "allow": ["aos_*", "kb__*"], "deny": ["aos_send_message"]}], audit=audit)

    def call(agent: str, tool: str) -> PolicyRequest:
        return PolicyRequest("tool.call", caller=f"agent:{agent}", agent_id=agent, tool=tool)

    assert engine.evaluate(call("cto", "kb__search")).allowed
    assert engine.evaluate(call("ceo", "github__delete_repo")).allowed  # the rule is the CTO's
    for tool in ("aos_send_message", "github__delete_repo"):
        with pytest.raises(PolicyDenied, match=f"may not call the tool '{tool}'"):
            await engine.enforce(call("cto", tool))
    entries = await audit.entries(action="policy.denied")
    assert [e.payload["request"]["tool"] for e in entries] == ["aos_send_message", "github__delete_repo"]
    assert engine.evaluate(PolicyRequest("event.deliver", agent_id="cto", event_type="x")).allowed  # not a tool


async def test_required_roles() -> None:
    engine = PolicyEngine.from_config(POLICIES)
    denied = engine.evaluate(PolicyRequest("agent.terminate", caller="u", roles=frozenset({"operator"})))
    assert (denied.outcome, denied.rule_id) == ("deny", "admin-only-terminate")
    assert engine.evaluate(PolicyRequest("agent.terminate", roles=frozenset({"admin"}))).allowed


async def test_spending_thresholds_for_the_cfo(audit: SqliteAuditLog) -> None:
    engine = PolicyEngine.from_config(POLICIES, audit=audit)

    def spend(amount: float, currency: str = "USD") -> tuple[str, str | None]:
        d = engine.evaluate(PolicyRequest("spend", agent_id="cfo", amount=amount, currency=currency))
        return d.outcome, d.rule_id

    assert spend(9_999) == ("approve", "cfo-spend")
    assert spend(10_000) == ("approve", "cfo-spend")
    assert spend(50_000) == ("escalate", "cfo-spend")
    assert spend(100_001) == ("deny", "cfo-spend")
    assert spend(100_001, "EUR") == ("allow", None)  # no rule for EUR
    assert spend(-1)[0] == "deny"
    escalation = await engine.enforce(PolicyRequest("spend", agent_id="cfo", amount=50_000, currency="USD"))
    assert escalation.outcome == "escalate"
    assert [e.action for e in await audit.entries()] == ["policy.escalated"]
    with pytest.raises(PolicyDenied, match="above the spending limit"):
        await engine.enforce(PolicyRequest("spend", agent_id="cfo", amount=1e6, currency="USD"))


async def test_rate_limit_per_caller_refills_on_the_clock() -> None:
    clock = ManualClock()
    engine = PolicyEngine.from_config(POLICIES, clock=clock)

    def post(caller: str) -> str:
        return engine.evaluate(PolicyRequest("event.post", caller=caller)).outcome

    assert [post("alice") for _ in range(4)] == ["allow", "allow", "allow", "deny"]
    assert post("bob") == "allow"  # buckets are per caller
    await clock.advance(20)  # 60 s / 3 tokens: one token back every 20 s
    assert [post("alice"), post("alice")] == ["allow", "deny"]
    assert engine.evaluate(PolicyRequest("event.post", caller="alice")).rule_id == "api-rate"


async def test_a_denied_request_does_not_spend_a_rate_token() -> None:
    engine = PolicyEngine.from_config([
        {"id": "roles", "kind": "roles", "action": "event.post", "any_of": ["operator"]},
        {"id": "rate", "kind": "rate_limit", "action": "event.post", "limit": 1, "per": 60},
    ], clock=ManualClock())
    assert engine.evaluate(PolicyRequest("event.post", caller="c")).rule_id == "roles"
    assert engine.evaluate(PolicyRequest("event.post", caller="c", roles=frozenset({"operator"}))).allowed


async def test_a_rate_limit_counts_across_workers_sharing_the_store(tmp_path: Path) -> None:
    from services.storage import SqliteStateStore

    clock = ManualClock()
    stores = [SqliteStateStore(tmp_path / "state.db") for _ in range(3)]  # three workers, one file
    engines = [PolicyEngine.from_config([{"id": "ten", "kind": "rate_limit", "action": "event.post", "limit": 10,
                                          "per": 60}], clock=clock, store=store) for store in stores]

    async def post(engine: PolicyEngine) -> str:
        try:
            return (await engine.enforce(PolicyRequest("event.post", caller="alice"))).outcome
        except PolicyDenied:
            return "deny"

    import asyncio

    outcomes = await asyncio.gather(*(post(engines[n % 3]) for n in range(30)))
    assert outcomes.count("allow") == 10  # 10 per minute in total, not 10 per worker
    await clock.advance(6)  # one token back every 6 s
    assert [await post(engines[2]), await post(engines[0])] == ["allow", "deny"]
    for store in stores:
        await store.close()


async def test_a_remembered_decision_follows_the_rules_that_replace_it() -> None:
    engine = PolicyEngine.from_config([{"id": "open", "kind": "event_types", "agent": "cfo", "allow": ["*"]}])
    request = PolicyRequest("event.deliver", agent_id="cfo", event_type="budget.delete")
    assert (await engine.enforce(request)).outcome == "allow"
    assert (await engine.enforce(request)).outcome == "allow"  # answered from memory
    engine.rules = load_rules(POLICIES)
    with pytest.raises(PolicyDenied) as info:
        await engine.enforce(request)
    assert info.value.rule_id == "cfo-events"
    with pytest.raises(AttributeError):
        engine.rules.append(engine.rules[0])  # type: ignore[attr-defined]  # replaced whole, never in place


async def test_remembered_decisions_still_tell_requests_apart_by_what_they_depend_on() -> None:
    engine = PolicyEngine.from_config(POLICIES)
    spend = PolicyRequest("spend", agent_id="cfo", amount=5_000, currency="USD")
    assert (await engine.enforce(spend)).outcome == "approve"
    assert (await engine.enforce(PolicyRequest("spend", agent_id="cfo", amount=50_000, currency="USD"))
            ).outcome == "escalate"
    assert (await engine.enforce(spend)).outcome == "approve"
    terminate = PolicyRequest("agent.terminate", caller="api:root", roles=frozenset({"admin"}))
    assert (await engine.enforce(terminate)).outcome == "allow"
    with pytest.raises(PolicyDenied):
        await engine.enforce(PolicyRequest("agent.terminate", caller="api:root", roles=frozenset({"reader"})))
    posts = [PolicyRequest("event.post", caller=f"api:{who}") for who in ("a", "a", "a", "a", "b")]
    outcomes = []
    for post in posts:  # rate limits are counted on every call, per caller, never remembered
        try:
            outcomes.append((await engine.enforce(post)).outcome)
        except PolicyDenied:
            outcomes.append("deny")
    assert outcomes == ["allow", "allow", "allow", "deny", "allow"]
