"""The event envelope (CloudEvents 1.0 attribute names) and the ids that address agents and topics."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aos_core.ids import ID_PATTERN

_ID_PATTERN = re.compile(ID_PATTERN)
_TOPIC_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,259}$")


def validate_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a URL-safe AOS id, else raise ValueError naming `what`."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise ValueError(f"{what} {value!r} must match {_ID_PATTERN.pattern}")
    return value


@dataclass(frozen=True, slots=True)
class AgentId:
    """An agent's address: its type (what code runs it) and its key (unique across all agents)."""

    type: str
    key: str

    def __post_init__(self) -> None:
        validate_id(self.type, "agent type")
        validate_id(self.key, "agent id")

    def __str__(self) -> str:
        return f"{self.type}/{self.key}"

    @classmethod
    def from_str(cls, value: str) -> AgentId:
        type_, sep, key = value.partition("/")
        if not sep:
            raise ValueError(f"agent id {value!r} must look like 'type/key'")
        return cls(type_, key)


@dataclass(frozen=True, slots=True)
class TopicId:
    """A bus topic name such as `agent.events`."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOPIC_PATTERN.match(self.name):
            raise ValueError(f"topic {self.name!r} must match {_TOPIC_PATTERN.pattern}")

    def __str__(self) -> str:
        return self.name

    @classmethod
    def from_str(cls, value: str) -> TopicId:
        return cls(value)


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """A CloudEvents 1.0 event plus AOS extensions (`correlationid`, `traceparent`).

    `subject` addresses one agent key when set (type subscriptions use it to pick the instance).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = "1.0"
    id: str = Field(default_factory=_new_id, min_length=1, max_length=200)
    source: str = Field(default="aos", min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    subject: str | None = Field(default=None, max_length=500)
    time: datetime = Field(default_factory=_now)
    datacontenttype: str | None = "application/json"
    data: Any = None
    correlationid: str | None = Field(default=None, max_length=200)
    traceparent: str | None = Field(default=None, pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

    @field_validator("specversion")
    @classmethod
    def _only_v1(cls, value: str) -> str:
        if value != "1.0":
            raise ValueError("only CloudEvents specversion 1.0 is supported")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        # Naive times are ambiguous across hosts; treat them as UTC so round-trips stay lossless.
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        return cls.model_validate_json(raw)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
