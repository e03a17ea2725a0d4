"""The risk registry: risks with likelihood, impact, score, owner, mitigations, status and history.

Stored as documents in the StateStore (`governance/risks/{id}`); every change is an ETag-guarded write that
appends to the risk's history, and is audited when an AuditLog is given. The pydantic models are what the
HTTP API accepts and returns (the OpenAPI document uses them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aos_core.clock import SystemClock, UuidIds
from aos_core.errors import ConflictError, NotFoundError
from aos_core.etag import retry_on_conflict
from aos_core.ports import AuditLog, Clock, IdFactory, StateStore
from services.storage.scan import scan

PREFIX = "governance/risks/"
RiskStatus = Literal["open", "mitigating", "accepted", "closed"]
_Name = Field(min_length=1, max_length=200)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RiskCreate(_Model):
    """A new risk, as an agent or a person raises it."""

    title: str = _Name
    description: str = Field(default="", max_length=5000)
    category: str = Field(default="general", min_length=1, max_length=100)
    likelihood: int = Field(ge=1, le=5, description="1 (rare) to 5 (almost certain)")
    impact: int = Field(ge=1, le=5, description="1 (negligible) to 5 (severe)")
    owner: str = _Name
    mitigations: list[str] = Field(default_factory=list, max_length=50)


class RiskUpdate(_Model):
    """A partial change; unset fields stay as they are. `note` goes into the history."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    category: str | None = Field(default=None, min_length=1, max_length=100)
    likelihood: int | None = Field(default=None, ge=1, le=5)
    impact: int | None = Field(default=None, ge=1, le=5)
    owner: str | None = Field(default=None, min_length=1, max_length=200)
    mitigations: list[str] | None = Field(default=None, max_length=50)
    status: Literal["open", "mitigating", "accepted"] | None = None  # closing is `close()`
    note: str | None = Field(default=None, max_length=2000)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        # Leaving a field out keeps it; null cannot clear it, since a risk always has every field but `note`.
        if isinstance(data, dict):
            nulls = sorted(k for k, v in data.items() if v is None and k != "note" and k in cls.model_fields)
            if nulls:
                raise ValueError(f"{', '.join(nulls)} cannot be null; leave a field out to keep it")
        return data


class RiskChange(_Model):
    at: datetime
    actor: str
    changes: dict[str, Any]  # field -> [old, new]
    note: str | None = None


class Risk(RiskCreate):
    """A stored risk. `score` is likelihood x impact (1-25); `level` is low (<5), medium (<12), high."""

    id: str
    status: RiskStatus = "open"
    score: int
    level: Literal["low", "medium", "high"]
    raised_by: str
    created_at: datetime
    updated_at: datetime
    resolution: str | None = None
    history: list[RiskChange] = Field(default_factory=list)


def _level(score: int) -> Literal["low", "medium", "high"]:
    return "low" if score < 5 else "medium" if score < 12 else "high"


class RiskRegistry:
    """Create, read, update, list and close risks over any StateStore."""

    def __init__(self, store: StateStore, *, clock: Clock | None = None, ids: IdFactory | None = None,
                 audit: AuditLog | None = None) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()
        self.audit = audit

    async def _record(self, actor: str, action: str, risk: Risk, payload: dict[str, Any]) -> None:
        if self.audit is not None:
            await self.audit.append(actor, action, f"risk/{risk.id}", payload)

    async def create(self, data: RiskCreate | dict[str, Any], actor: str, *, risk_id: str | None = None) -> Risk:
        """Register a new risk raised by `actor`; ValidationError (nothing stored) on bad input.

        With `risk_id` (e.g. one per department and month) raising is idempotent: an existing risk of that id
        is returned unchanged, so an agent that sees the same overrun twice raises it once.
        """
        fields = data if isinstance(data, RiskCreate) else RiskCreate.model_validate(data)
        if risk_id is not None:
            existing = await self.store.get(PREFIX + risk_id)
            if existing is not None:
                return Risk.model_validate(existing.value)
        now = self.clock.now()
        score = fields.likelihood * fields.impact
        risk = Risk(**fields.model_dump(), id=risk_id or self.ids.new_id(), score=score, level=_level(score),
                    raised_by=actor,
                    created_at=now, updated_at=now,
                    history=[RiskChange(at=now, actor=actor, changes={"status": [None, "open"]}, note="raised")])
        await self.store.put(PREFIX + risk.id, risk.model_dump(mode="json"), if_none_match=True)
        await self._record(actor, "risk.raised", risk, {"title": risk.title, "score": score, "owner": risk.owner})
        return risk

    async def _load(self, risk_id: str) -> tuple[Risk, str]:
        if not isinstance(risk_id, str) or not risk_id or "/" in risk_id or len(risk_id) > 200:
            raise NotFoundError(f"risk {risk_id!r} not found")
        doc = await self.store.get(PREFIX + risk_id)
        if doc is None:
            raise NotFoundError(f"risk {risk_id!r} not found")
        return Risk.model_validate(doc.value), doc.etag

    async def get(self, risk_id: str) -> Risk:
        """The risk; NotFoundError if there is none with this id."""
        return (await self._load(risk_id))[0]

    async def update(self, risk_id: str, patch: RiskUpdate | dict[str, Any], actor: str) -> Risk:
        """Apply `patch`, recording old and new values in the history. A closed risk cannot change."""
        change = patch if isinstance(patch, RiskUpdate) else RiskUpdate.model_validate(patch)
        return await self._change(risk_id, actor, change.model_dump(exclude_unset=True, exclude={"note"}),
                                  change.note, "risk.updated")

    async def close(self, risk_id: str, actor: str, resolution: str) -> Risk:
        """Close the risk with a resolution (why it no longer needs watching)."""
        if not isinstance(resolution, str) or not resolution.strip() or len(resolution) > 2000:
            raise ValueError("resolution must be 1-2000 characters")
        return await self._change(risk_id, actor, {"status": "closed", "resolution": resolution}, None, "risk.closed")

    async def _change(self, risk_id: str, actor: str, values: dict[str, Any], note: str | None, action: str) -> Risk:
        async def attempt() -> tuple[Risk, dict[str, Any] | None]:  # (risk, its changes; None: it is closed)
            risk, etag = await self._load(risk_id)
            if risk.status == "closed":
                return risk, None
            current = risk.model_dump()
            diff = {k: [current[k], v] for k, v in values.items() if current[k] != v}
            if not diff and note is None:
                return risk, diff
            merged = {**current, **values}
            merged["score"] = merged["likelihood"] * merged["impact"]
            merged["level"] = _level(merged["score"])
            merged["updated_at"] = self.clock.now()
            merged["history"] = [*current["history"],
                                 {"at": merged["updated_at"], "actor": actor, "changes": diff, "note": note}]
            try:
                updated = Risk.model_validate(merged)
            except ValidationError as exc:
                raise ValueError(str(exc)) from None
            await self.store.put(PREFIX + risk_id, updated.model_dump(mode="json"), if_match=etag)
            return updated, diff

        risk, diff = await retry_on_conflict(attempt, key=PREFIX + risk_id, what="risk update")
        if diff is None:
            raise ConflictError(PREFIX + risk_id, "risk is closed")
        if diff or note is not None:
            await self._record(actor, action, risk, {"changes": diff, "note": note})
        return risk

    async def list(self, *, status: str | None = None, owner: str | None = None, min_score: int | None = None,
                   after: str | None = None, limit: int = 100) -> list[Risk]:
        """Risks in id order after `after`, filtered; at most `limit` (1-1000)."""

        def keep(risk: Risk) -> bool:
            return (status is None or risk.status == status) and (owner is None or risk.owner == owner) and \
                (min_score is None or risk.score >= min_score)

        return await scan(self.store, PREFIX, Risk.model_validate, keep, after=after, limit=limit)
