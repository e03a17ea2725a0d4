from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from aos_core.errors import ConflictError, NotFoundError
from aos_core.testing import ManualClock, SequentialIds
from services.governance.audit import SqliteAuditLog
from services.governance.decisions import DecisionLog
from services.governance.risks import RiskCreate, RiskRegistry, RiskUpdate
from services.storage import SqliteStateStore

RISK = {"title": "Supplier insolvency", "likelihood": 2, "impact": 5, "owner": "cfo",
        "mitigations": ["second supplier"]}


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SqliteStateStore, SqliteAuditLog, ManualClock]]:
    clock = ManualClock()
    store = SqliteStateStore(tmp_path / "state.db")
    audit = SqliteAuditLog(tmp_path / "audit.db", clock=clock)
    yield store, audit, clock
    await audit.close()
    await store.close()


Parts = tuple[SqliteStateStore, SqliteAuditLog, ManualClock]


async def test_risk_lifecycle_with_history_and_audit(parts: Parts) -> None:
    store, audit, clock = parts
    risks = RiskRegistry(store, clock=clock, ids=SequentialIds("risk"), audit=audit)
    risk = await risks.create(RISK, actor="agent:cfo")
    assert (risk.id, risk.score, risk.level, risk.status) == ("risk-1", 10, "medium", "open")
    assert risk.raised_by == "agent:cfo"
    await clock.advance(60)
    updated = await risks.update("risk-1", RiskUpdate(likelihood=4, status="mitigating", note="supplier late"),
                                 actor="api:alice")
    assert (updated.score, updated.level, updated.status) == (20, "high", "mitigating")
    assert updated.history[-1].changes == {"likelihood": [2, 4], "status": ["open", "mitigating"]}
    assert updated.history[-1].note == "supplier late" and updated.history[-1].actor == "api:alice"
    assert updated.updated_at > updated.created_at
    closed = await risks.close("risk-1", "api:alice", "contract renegotiated")
    assert (closed.status, closed.resolution) == ("closed", "contract renegotiated")
    with pytest.raises(ConflictError):
        await risks.update("risk-1", {"impact": 1}, actor="x")
    assert await risks.get("risk-1") == closed
    assert [e.action for e in await audit.entries()] == ["risk.raised", "risk.updated", "risk.closed"]
    assert (await audit.verify()).ok


async def test_list_filters_and_pages(parts: tuple[SqliteStateStore, SqliteAuditLog, ManualClock]) -> None:
    store, _, clock = parts
    risks = RiskRegistry(store, clock=clock, ids=SequentialIds("r"))
    for likelihood in (1, 3, 5):
        await risks.create({**RISK, "likelihood": likelihood, "owner": f"o{likelihood}"}, actor="a")
    await risks.close("r-1", "a", "gone")
    assert [r.id for r in await risks.list()] == ["r-1", "r-2", "r-3"]
    assert [r.id for r in await risks.list(status="open")] == ["r-2", "r-3"]
    assert [r.id for r in await risks.list(min_score=20)] == ["r-3"]
    assert [r.id for r in await risks.list(owner="o3")] == ["r-2"]
    assert [r.id for r in await risks.list(after="r-1", limit=1)] == ["r-2"]


async def test_bad_risk_input_and_missing_risks(parts: tuple[SqliteStateStore, SqliteAuditLog, ManualClock]) -> None:
    store, audit, clock = parts
    risks = RiskRegistry(store, clock=clock, audit=audit)
    with pytest.raises(ValidationError):
        await risks.create({**RISK, "likelihood": 6}, actor="a")
    with pytest.raises(ValidationError):
        await risks.create({**RISK, "unknown": 1}, actor="a")
    with pytest.raises(ValidationError):
        RiskUpdate.model_validate({"status": "closed"})
    with pytest.raises(NotFoundError):
        await risks.get("nope")
    with pytest.raises(NotFoundError):
        await risks.get("../x")
    assert await risks.list() == [] and await audit.entries() == []
    assert "likelihood" in RiskCreate.model_json_schema()["properties"]


async def test_concurrent_updates_lose_nothing(parts: tuple[SqliteStateStore, SqliteAuditLog, ManualClock]) -> None:
    store, _, clock = parts
    risks = RiskRegistry(store, clock=clock, ids=SequentialIds("r"))
    await risks.create(RISK, actor="a")
    await asyncio.gather(*(risks.update("r-1", {"note": f"n{i}"}, actor=f"u{i}") for i in range(5)))
    notes = {h.note for h in (await risks.get("r-1")).history}
    assert {f"n{i}" for i in range(5)} <= notes


async def test_decision_records_link_to_their_audit_entry(
        parts: tuple[SqliteStateStore, SqliteAuditLog, ManualClock]) -> None:
    store, audit, clock = parts
    decisions = DecisionLog(store, audit=audit, clock=clock, ids=SequentialIds("dec"))
    record = await decisions.record({
        "agent_id": "cfo", "title": "Approve Q3 marketing budget", "inputs": {"requested": 50_000},
        "options": [{"name": "approve", "score": 0.7}, {"name": "reject", "score": 0.3}],
        "chosen": "approve", "rationale": "within plan", "confidence": 0.8, "outcome": "approved",
        "event_id": "evt-9"})
    assert record.id == "dec-1"
    [entry] = await audit.entries(action="decision.taken")
    assert (record.audit_seq, record.audit_hash) == (entry.seq, entry.hash)
    assert entry.subject == "decision/dec-1" and entry.actor == "agent:cfo"
    assert entry.payload["content_hash"] == record.content_hash
    stored = await decisions.get("dec-1")
    assert stored == record and decisions.verify(stored)
    assert not decisions.verify(stored.model_copy(update={"rationale": "rewritten later"}))
    assert [d.id for d in await decisions.list(agent_id="cfo")] == ["dec-1"]
    assert await decisions.list(agent_id="ceo") == []
    with pytest.raises(NotFoundError):
        await decisions.get("dec-2")


async def test_bad_decisions_write_nothing(parts: tuple[SqliteStateStore, SqliteAuditLog, ManualClock]) -> None:
    store, audit, clock = parts
    decisions = DecisionLog(store, audit=audit, clock=clock)
    base = {"agent_id": "cfo", "title": "t", "rationale": "r", "confidence": 0.5}
    with pytest.raises(ValidationError):
        await decisions.record({**base, "confidence": 1.5})
    with pytest.raises(ValueError, match="not among the options"):
        await decisions.record({**base, "options": [{"name": "a"}], "chosen": "b"})
    assert await audit.entries() == [] and await decisions.list() == []
