"""The HTTP API's bodies as pydantic models (the operations name them: aos_core.api_operations).

Requests are validated with these models; responses are built from them, so every answer matches the
document that `GET /api/openapi.json` serves (aos_core.openapi).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aos_core.ids import ID_PATTERN

_AGENT_ID = ID_PATTERN
_EVENT_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- requests ------------------------------------------------------------------------------------------


class AgentCreate(_In):
    """Register an agent of a known type under a new id; perpetual agents are loaded on their first event."""

    type: str = Field(pattern=_AGENT_ID, description="a registered agent type, e.g. `tally`")
    id: str = Field(pattern=_AGENT_ID, description="the agent id, unique across all agents")
    config: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, max_length=100)
    subscribe: list[str] = Field(default_factory=list, max_length=100,
                                 description="event type patterns (globs) this agent receives")


class MessageIn(_In):
    """A direct message to one agent. Resending the same `id` does not apply it twice."""

    id: str | None = Field(default=None, min_length=1, max_length=200)
    type: str = Field(min_length=1, max_length=200, pattern=_EVENT_TYPE)
    data: Any = None
    correlationid: str | None = Field(default=None, max_length=200)


# --- responses -----------------------------------------------------------------------------------------


class Problem(_Out):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = None


class AgentResultOut(_Out):
    agent_id: str
    status: Literal["completed", "failed", "duplicate", "rejected", "accepted"]
    result: Any = None
    error: str | None = None


class EventAccepted(_Out):
    id: str
    status: Literal["pending", "completed", "failed", "rejected"]  # rejected: targets only refused it
    status_url: str


class EventStatus(EventAccepted):
    type: str
    kind: Literal["event", "message"]
    accepted_at: str
    targets: list[str]
    results: list[AgentResultOut]


class EventBatch(_Out):
    items: list[EventStatus | EventAccepted]  # full statuses when the wait saw every event done


class AgentInfo(_Out):
    id: str
    type: str
    state: str
    live: bool
    config: dict[str, Any]
    depends_on: list[str]
    capabilities: list[str]
    lifecycle: dict[str, Any]
    created_at: str


class AgentList(_Out):
    agents: list[AgentInfo]


class AgentContextOut(_Out):
    agent_id: str
    version: int
    state: dict[str, Any]


class AuditEntryOut(_Out):
    seq: int
    time: str
    actor: str
    action: str
    subject: str
    payload: Any = None
    payload_hash: str
    prev_hash: str
    hash: str


class AuditPage(_Out):
    entries: list[AuditEntryOut]
    next: str | None = Field(default=None, description="the URL of the next page, when this one is full")


class AuditVerificationOut(_Out):
    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str | None = None


class Health(_Out):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] = Field(default_factory=dict)
