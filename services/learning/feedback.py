"""Feedback on agent decisions: thumbs, scores and corrections, validated and stored per decision.

`FeedbackService.submit(decision_id, body, actor=...)` is what the HTTP route calls
(`POST /api/decisions/{decision_id}/feedback`): it raises InvalidFeedbackError (400) for a bad body and
NotFoundError (404) for an unknown decision, and stores nothing in either case. Records live at
`learning/feedback/{decision_id}/{feedback_id}` in the StateStore.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aos_core.clock import SystemClock, UuidIds
from aos_core.errors import AOSError, NotFoundError
from aos_core.ports import Clock, IdFactory, StateStore

PREFIX = "learning/feedback/"


class InvalidFeedbackError(AOSError, ValueError):
    """The feedback body is not valid; the message names the field. Nothing was stored."""


class FeedbackCreate(BaseModel):
    """What a caller sends. `thumbs`: value "up"/"down"; `score`: value 0..1; `correction`: the better answer."""

    # The document says which value goes with which kind, as the validator below checks.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"properties": {"kind": {"const": "thumbs"}, "value": {"enum": ["up", "down"]},
                        "correction": {"type": "null"}}, "required": ["value"]},
        {"properties": {"kind": {"const": "score"}, "value": {"type": "number", "minimum": 0, "maximum": 1},
                        "correction": {"type": "null"}}, "required": ["value"]},
        {"properties": {"kind": {"const": "correction"}, "correction": {"type": "string", "pattern": "\\S"},
                        "value": {"type": "null"}}, "required": ["correction"]}]})

    kind: Literal["thumbs", "score", "correction"]
    value: Literal["up", "down"] | float | None = None
    correction: str | None = Field(default=None, max_length=20_000)
    comment: str = Field(default="", max_length=2000)

    @field_validator("value", mode="before")
    @classmethod
    def _no_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("value must be 'up', 'down' or a number, not a boolean")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackCreate:
        if self.kind == "thumbs" and self.value not in ("up", "down"):
            raise ValueError("thumbs feedback needs value 'up' or 'down'")
        if self.kind == "score" and (isinstance(self.value, str) or self.value is None or not 0 <= self.value <= 1):
            raise ValueError("score feedback needs a numeric value from 0 to 1")
        if self.kind == "correction":
            if not self.correction or not self.correction.strip():
                raise ValueError("correction feedback needs a non-empty 'correction' text")
            if self.value is not None:
                raise ValueError("correction feedback takes no 'value'")
        elif self.correction is not None:
            raise ValueError(f"{self.kind} feedback takes no 'correction'; send kind 'correction'")
        return self

    @property
    def score(self) -> float | None:
        """The rating of the agent's answer on 0..1 (thumbs up 1, down 0; a correction rates it 0)."""
        if self.kind == "thumbs":
            return 1.0 if self.value == "up" else 0.0
        if self.kind == "score":
            return float(self.value)  # type: ignore[arg-type]
        return 0.0


class Feedback(FeedbackCreate):
    id: str
    decision_id: str
    agent_id: str
    actor: str
    time: datetime


class DecisionSource(Protocol):
    """Where decisions are read (services.governance.decisions.DecisionLog implements it)."""

    async def get(self, decision_id: str) -> Any: ...


class FeedbackService:
    """Validate and store feedback on decisions that exist; list it for the dataset builder."""

    def __init__(self, store: StateStore, decisions: DecisionSource, *, clock: Clock | None = None,
                 ids: IdFactory | None = None) -> None:
        self.store = store
        self.decisions = decisions
        self.clock = clock or SystemClock()
        self.ids = ids or UuidIds()

    async def submit(self, decision_id: str, body: dict[str, Any] | FeedbackCreate, *,
                     actor: str = "anonymous") -> Feedback:
        """Record feedback on decision `decision_id` (InvalidFeedbackError, NotFoundError; nothing stored)."""
        try:
            fields = body if isinstance(body, FeedbackCreate) else FeedbackCreate.model_validate(body)
        except ValidationError as exc:
            raise InvalidFeedbackError(_explain(exc)) from None
        decision = await self.decisions.get(decision_id)  # NotFoundError for an unknown decision
        feedback = Feedback(**fields.model_dump(), id=self.ids.new_id(), decision_id=decision_id,
                            agent_id=decision.agent_id, actor=actor, time=self.clock.now())
        await self.store.put(f"{PREFIX}{decision_id}/{feedback.id}", feedback.model_dump(mode="json"),
                             if_none_match=True)
        return feedback

    async def for_decision(self, decision_id: str) -> list[Feedback]:
        """Feedback on one decision, in id order."""
        if not decision_id or "/" in decision_id:
            raise NotFoundError(f"decision {decision_id!r} not found")
        return await self._list(f"{PREFIX}{decision_id}/")

    async def all(self) -> list[Feedback]:
        """Every feedback record (the dataset builder reads them all)."""
        return await self._list(PREFIX)

    async def _list(self, prefix: str) -> list[Feedback]:
        out: list[Feedback] = []
        after: str | None = None
        while True:
            page = await self.store.list(prefix, start_after=after, limit=1000)
            out += [Feedback.model_validate(doc.value) for doc in page]
            if len(page) < 1000:
                return out
            after = page[-1].key


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        loc = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("literal[", "float")))
        parts.append(f"{loc or 'feedback'}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(dict.fromkeys(parts))
