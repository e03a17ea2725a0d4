"""Every service the kernel uses, as a `typing.Protocol`.

Each port has an embedded implementation (SQLite or in-process, the default) and an Azure one selected by
config; `aos_core.runtime` is the only place that picks them. Adapters raise the typed errors in
`aos_core.errors` (ConflictError on a lost ETag race, NotFoundError, LockLostError).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from aos_core.events import AgentId, Event

JSON = Any  # a value json.dumps accepts: dict, list, str, int, float, bool or None


# --- time and ids -------------------------------------------------------------------------------


@runtime_checkable
class Clock(Protocol):
    """Where the kernel gets time. Tests use `aos_core.testing.ManualClock` instead of sleeping."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for timeouts and idle tracking)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class IdFactory(Protocol):
    def new_id(self) -> str:
        """A new unique id (uuid4 text by default)."""
        ...


# --- storage ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Document:
    """A stored JSON document and the ETag of the version read."""

    key: str
    value: JSON
    etag: str


@runtime_checkable
class StateStore(Protocol):
    """JSON documents by key, with optimistic concurrency through ETags.

    Keys are `/`-separated paths (`context/ceo`, `registry/agents/t1`); listing is by key prefix in key order.
    """

    async def get(self, key: str) -> Document | None:
        """The document at `key`, or None."""
        ...

    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write `value` and return the new ETag.

        `if_match`: replace only if the stored ETag equals it (ConflictError otherwise, also if missing).
        `if_none_match`: create only; ConflictError if the key exists.
        """
        ...

    async def delete(self, key: str, *, if_match: str | None = None) -> bool:
        """Delete `key`; False if it did not exist. ConflictError on a stale `if_match`."""
        ...

    async def list(self, prefix: str = "", *, start_after: str | None = None, limit: int = 1000) -> list[Document]:
        """Documents whose key starts with `prefix`, in key order, after `start_after`, at most `limit`."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class BlobStore(Protocol):
    """Opaque bytes by (container, name): files, reports, exported models."""

    async def upload(self, container: str, name: str, data: bytes | str, *, overwrite: bool = True) -> str:
        """Store `data` (str is UTF-8 encoded) and return its ETag. ConflictError if it exists and not `overwrite`."""
        ...

    async def download(self, container: str, name: str) -> bytes:
        """The blob's bytes; NotFoundError if missing."""
        ...

    async def delete_blob(self, container: str, name: str) -> bool: ...

    async def list_blobs(self, container: str, prefix: str = "") -> list[str]: ...


# --- messaging ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionFilter:
    """Which events a subscription takes. Empty fields match everything.

    `event_types` are glob patterns (`order.*`); `subject` and `correlationid` must be equal when set.
    """

    event_types: tuple[str, ...] = ()
    subject: str | None = None
    correlationid: str | None = None


@dataclass(frozen=True, slots=True)
class BusMessage:
    """One event received under a peek-lock; settle it with complete, abandon or dead_letter."""

    event: Event
    topic: str
    subscription: str
    sequence_number: int
    delivery_count: int
    lock_token: str
    locked_until: datetime
    enqueued_time: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event: Event
    topic: str
    subscription: str
    sequence_number: int
    delivery_count: int
    reason: str
    description: str | None
    dead_lettered_time: datetime


@runtime_checkable
class EventBus(Protocol):
    """Topics with subscriptions, peek-lock delivery, dead-letter and scheduled messages (Service Bus semantics).

    Delivery is at least once: a message whose lock expires or that is abandoned comes back with its
    delivery count raised; past the subscription's `max_delivery_count` it is dead-lettered with the reason.
    Publishing is idempotent by event id per topic (duplicate detection).
    """

    async def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        filter: SubscriptionFilter | None = None,
        max_delivery_count: int = 10,
        lock_duration: float = 30.0,
    ) -> None:
        """Create the topic and subscription if missing (idempotent); later messages are copied to it."""
        ...

    async def publish(self, topic: str, event: Event, *, scheduled_time: datetime | None = None) -> None:
        """Put `event` on every subscription of `topic` whose filter matches, now or at `scheduled_time`."""
        ...

    async def receive(
        self, topic: str, subscription: str, *, max_messages: int = 1, max_wait: float = 0.0
    ) -> list[BusMessage]:
        """Lock and return up to `max_messages` available messages, waiting up to `max_wait` seconds for one."""
        ...

    async def complete(self, message: BusMessage) -> None:
        """Remove a settled message. LockLostError if its lock expired or was settled already."""
        ...

    async def abandon(self, message: BusMessage, *, reason: str | None = None) -> None:
        """Release the lock so the message is delivered again (or dead-lettered at max deliveries)."""
        ...

    async def dead_letter(self, message: BusMessage, *, reason: str, description: str | None = None) -> None: ...

    async def renew_lock(self, message: BusMessage) -> BusMessage: ...

    async def dead_letters(self, topic: str, subscription: str) -> list[DeadLetter]: ...

    async def conversation(self, correlation_id: str) -> list[Event]:
        """Every event published with this correlation id, in publish order."""
        ...

    async def close(self) -> None: ...


MessageHandler = Callable[[Event], Awaitable[Any]]


# --- agents -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentResult:
    """What one agent did with one event. `status` is never "completed" for a failure."""

    agent_id: str
    status: str  # "completed" | "failed" | "duplicate" | "rejected" | "accepted" (handed to its mailbox elsewhere)
    result: JSON = None
    error: str | None = None
    extra: dict[str, JSON] = field(default_factory=dict)

    def to_dict(self) -> dict[str, JSON]:
        out: dict[str, JSON] = {"agent_id": self.agent_id, "status": self.status, "result": self.result}
        if self.error is not None:
            out["error"] = self.error
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> AgentResult:
        known = {"agent_id", "status", "result", "error"}
        return cls(str(value["agent_id"]), str(value["status"]), value.get("result"), value.get("error"),  # type: ignore[arg-type]
                   {k: v for k, v in value.items() if k not in known})


class Dispatcher(Protocol):
    """Delivers an event to one agent through that agent's serial mailbox."""

    async def deliver(self, agent_id: AgentId, event: Event) -> AgentResult: ...

    async def close(self) -> None: ...


class Orchestrations(Protocol):
    """Starts workflows as durable orchestrations (`aos_workflow` on Durable Functions when hosted), once per id."""

    async def start(self, workflow_id: str, definition: dict[str, Any], *, started_by: str) -> None: ...


# --- secrets ------------------------------------------------------------------------------------


class SecretStore(Protocol):
    async def get_secret(self, name: str) -> str | None:
        """The secret's value, or None when it is not set. Never log it."""
        ...


class Agent(Protocol):
    """What the kernel needs of an agent (agents.BaseAgent implements it)."""

    agent_id: str
    agent_type: str
    perpetual: bool
    depends_on: tuple[str, ...]

    @property
    def all_capabilities(self) -> tuple[str, ...]: ...

    async def initialize(self) -> None: ...

    async def process(self, event: Event, ctx: Any, *, durable: bool = True, retries: int = 5) -> tuple[str, JSON]: ...

    async def health_check(self) -> bool | str: ...

    async def sleep(self) -> None: ...

    async def shutdown(self) -> None: ...

    def describe(self) -> dict[str, Any]: ...


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


# --- telemetry ----------------------------------------------------------------------------------


class Telemetry(Protocol):
    """Spans and metrics for the kernel (services.observability on OpenTelemetry; a no-op by default)."""

    def span(self, name: str, *, parent: str | None = None, **attributes: Any) -> AbstractContextManager[Any]:
        """A span around a block, child of the current span or of the W3C `parent` traceparent."""
        ...

    def event_span(self, name: str, event: Event, **attributes: Any) -> AbstractContextManager[Any]:
        """A span about `event`, continuing the trace in `event.traceparent` when no span is current."""
        ...

    def inject(self, event: Event) -> Event:
        """`event` carrying the current span's traceparent."""
        ...

    def increment(self, name: str, n: int = 1, **attributes: Any) -> None: ...

    def histogram(self, name: str, value: float, **attributes: Any) -> None: ...
