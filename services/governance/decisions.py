"""Decision records: what an agent decided, from which inputs and options, why, and how sure it was.

Each record is stored in the StateStore (`governance/decisions/{id}`) and linked to the audit entry that
records it (`audit_seq`, `audit_hash`), so a decision can be both read (`GET /api/decisions/{id}`) and
proven unchanged: the audit payload carries the hash of the record's content.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aos_core.clock import SystemClock, UuidIds
from aos_core.errors import NotFoundError
from aos_core.ports import AuditLog, Clock, IdFactory, StateStore
from services.governance.chain import payload_hash
from services.storage.scan import scan

PREFIX = "governance/decisions/"


class DecisionOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    score: float | None = None  # how the agent rated it, on its own scale


class DecisionCreate(BaseModel):
    """What an agent submits when it takes a decision."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=200)
    inputs: dict[str, Any] = Field(default_factory=dict)
    options: list[DecisionOption] = Field(default_factory=list, max_length=100)
    chosen: str | None = Field(default=None, max_length=200, description="the option taken, by name")
    rationale: str = Field(min_length=1, max_length=10_000)
    confidence: float = Field(ge=0, le=1)
    outcome: str | None = Field(default=None, max_length=5000)
    event_id: str | None = Field(default=None, max_length=200)
    correlation_id: str | None = Field(default=None, max_length=200)


class DecisionRecord(DecisionCreate):
    """A stored decision, linked to its audit entry."""

    id: str
    time: datetime
    content_hash: str
    audit_seq: int | None = None
    audit_hash: str | None = None


class DecisionLog:
    """Records and reads decisions; each record is audited as `decision.taken` before it is stored."""

    def __init__(self, store: StateStore, *, audit: AuditLog | None = None, clock: Clock | None = None,
                 ids: IdFactory | None = None) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()

    async def record(self, data: DecisionCreate | dict[str, Any], actor: str | None = None, *,
                     decision_id: str | None = None) -> DecisionRecord:
        """Validate, audit, store and return the decision (ValidationError, nothing written, on bad input).

        With `decision_id` (an agent derives it from the event it handles) recording is idempotent: if that
        decision is already stored, it is returned and nothing is written or audited again.
        """
        fields = data if isinstance(data, DecisionCreate) else DecisionCreate.model_validate(data)
        if fields.chosen is not None and fields.options and fields.chosen not in {o.name for o in fields.options}:
            raise ValueError(f"chosen option {fields.chosen!r} is not among the options considered")
        if decision_id is not None:
            existing = await self.store.get(PREFIX + decision_id)
            if existing is not None:
                return DecisionRecord.model_validate(existing.value)
        content = fields.model_dump(mode="json")
        digest = payload_hash(content)
        record = DecisionRecord(**fields.model_dump(), id=decision_id or self.ids.new_id(), time=self.clock.now(),
                                content_hash=digest)
        if self.audit is not None:
            entry = await self.audit.append(actor or f"agent:{fields.agent_id}", "decision.taken",
                                            f"decision/{record.id}",
                                            {"title": fields.title, "chosen": fields.chosen,
                                             "confidence": fields.confidence, "content_hash": digest})
            record = record.model_copy(update={"audit_seq": entry.seq, "audit_hash": entry.hash})
        await self.store.put(PREFIX + record.id, record.model_dump(mode="json"), if_none_match=True)
        return record

    async def get(self, decision_id: str) -> DecisionRecord:
        """The decision; NotFoundError if there is none with this id."""
        if not isinstance(decision_id, str) or not decision_id or "/" in decision_id or len(decision_id) > 200:
            raise NotFoundError(f"decision {decision_id!r} not found")
        doc = await self.store.get(PREFIX + decision_id)
        if doc is None:
            raise NotFoundError(f"decision {decision_id!r} not found")
        return DecisionRecord.model_validate(doc.value)

    async def list(self, *, agent_id: str | None = None, after: str | None = None,
                   limit: int = 100) -> list[DecisionRecord]:
        """Decisions in id order after `after`, optionally of one agent; at most `limit` (1-1000)."""
        return await scan(self.store, PREFIX, DecisionRecord.model_validate,
                          None if agent_id is None else (lambda record: record.agent_id == agent_id),
                          after=after, limit=limit)

    def verify(self, record: DecisionRecord) -> bool:
        """True when the record's content still matches the hash its audit entry carries."""
        content = DecisionCreate.model_validate(record.model_dump(include=set(DecisionCreate.model_fields)))
        return payload_hash(content.model_dump(mode="json")) == record.content_hash
