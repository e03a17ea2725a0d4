"""Governance ports: the audit log, the agent index, policy, and idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from aos_core.ports.basics import JSON

# --- audit --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One link of the tamper-evident audit chain (hashes as lowercase hex SHA-256).

    `payload_hash` covers `payload`; `hash` covers seq, time, actor, action, subject, payload_hash and
    prev_hash in canonical JSON (HMAC-SHA256 when a key is configured); see services.governance.chain.
    """

    seq: int
    time: datetime
    actor: str
    action: str
    subject: str
    payload: JSON
    payload_hash: str
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, JSON]:
        return {"seq": self.seq, "time": self.time.isoformat(), "actor": self.actor, "action": self.action,
                "subject": self.subject, "payload": self.payload, "payload_hash": self.payload_hash,
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The result of checking the whole chain: `first_bad_seq` names where it breaks and `reason` says how."""

    ok: bool
    count: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, JSON]:
        return {"ok": self.ok, "count": self.count, "first_bad_seq": self.first_bad_seq, "reason": self.reason}


@runtime_checkable
class AuditLog(Protocol):
    """An append-only, hash-chained record of every state-changing action."""

    async def append(self, actor: str, action: str, subject: str, payload: JSON = None) -> AuditEntry:
        """Append one entry (next seq, linked to the previous entry's hash) and return it once durable."""
        ...

    async def append_many(self, items: Sequence[tuple[str, str, str, JSON]]) -> list[AuditEntry]:
        """Append `(actor, action, subject, payload)` entries, linked in this order; all validated first."""
        ...

    async def entries(self, after: int = 0, limit: int = 100, actor: str | None = None, action: str | None = None,
                      subject: str | None = None) -> list[AuditEntry]:
        """Entries with seq > `after` in seq order, at most `limit`, filtered by exact actor/action/subject."""
        ...

    async def verify(self) -> AuditVerification:
        """Check the whole chain; a changed, deleted, inserted or reordered entry makes it fail and is named."""
        ...

    async def close(self) -> None: ...


# --- agent index (Table Storage on Azure) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentIndexEntry:
    """One agent as the lookup index knows it; `etag` is the version read (None on a new entry)."""

    agent_id: str
    agent_type: str
    state: str
    capabilities: tuple[str, ...] = ()
    etag: str | None = None


@runtime_checkable
class AgentIndex(Protocol):
    """Agents by id, with lookups by type, capability and lifecycle state that always agree with the entry."""

    async def put(self, entry: AgentIndexEntry, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `entry` and its lookups atomically; return the new ETag. ConflictError on a stale `if_match`."""
        ...

    async def get(self, agent_id: str) -> AgentIndexEntry | None: ...

    async def remove(self, agent_id: str, *, if_match: str | None = None) -> bool: ...

    async def by_type(self, agent_type: str) -> list[AgentIndexEntry]: ...

    async def by_capability(self, capability: str) -> list[AgentIndexEntry]: ...

    async def by_state(self, state: str) -> list[AgentIndexEntry]: ...

    async def close(self) -> None: ...


# --- policy -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """What is about to happen: the action, who asks, and what it concerns."""

    action: str  # e.g. "event.deliver", "agent.register", "spend"
    caller: str | None = None
    roles: frozenset[str] = frozenset()
    agent_id: str | None = None
    agent_type: str | None = None
    event_type: str | None = None
    amount: float | None = None
    currency: str | None = None
    category: str | None = None
    tool: str | None = None  # a tool an agent's model asked to call (action "tool.call")
    subject: str | None = None  # for the audit entry; default the agent or the action


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """`outcome`: allow (no rule objected), approve / escalate (a spending rule), or deny; with the rule's id."""

    outcome: Literal["allow", "approve", "escalate", "deny"]
    rule_id: str | None = None
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return self.outcome in ("allow", "approve")

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "rule_id": self.rule_id, "reason": self.reason}


class Policy(Protocol):
    """Declarative rules evaluated before an action (services.governance.PolicyEngine)."""

    def evaluate(self, request: PolicyRequest) -> PolicyDecision: ...

    async def enforce(self, request: PolicyRequest) -> PolicyDecision:
        """Evaluate; a deny is audited and raises aos_core.errors.PolicyDenied naming the rule."""
        ...


# --- idempotency --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The response saved for an idempotency key, replayed as is."""

    status: int
    body: JSON
    headers: dict[str, str] = field(default_factory=dict)
    created_at: str = ""


class IdempotencyKeys(Protocol):
    """`Idempotency-Key` records for POST routes (services.reliability.IdempotencyStore)."""

    async def begin(self, scope: str, key: str, request_hash: str) -> StoredResponse | None:
        """Claim the key; the stored response of an earlier request with it, or None to go ahead.

        Raises IdempotencyMismatch (another body used the key) or IdempotencyInProgress.
        """
        ...

    async def save(self, scope: str, key: str, request_hash: str, status: int, body: JSON,
                   headers: dict[str, str] | None = None) -> StoredResponse:
        """Store the response for replays; returns the response that stands for the key."""
        ...

    async def release(self, scope: str, key: str) -> bool: ...

    async def purge_expired(self, limit: int = 1000) -> int:
        """Delete up to `limit` expired keys; returns how many."""
        ...
