"""Every service the kernel uses, as a `typing.Protocol`.

Each port has an embedded implementation (SQLite or in-process, the default) and an Azure one selected by
config; `aos_core.runtime` is the only place that picks them. Adapters raise the typed errors in
`aos_core.errors` (ConflictError on a lost ETag race, NotFoundError, LockLostError).

One module per area (basics, storage, messaging, agents, governance); import them from here.
"""

from __future__ import annotations

from aos_core.ports.agents import Agent, AgentResult, Dispatcher, Orchestrations, SecretStore
from aos_core.ports.basics import JSON, Clock, IdFactory, Telemetry
from aos_core.ports.governance import (
    AgentIndex,
    AgentIndexEntry,
    AuditEntry,
    AuditLog,
    AuditVerification,
    IdempotencyKeys,
    Policy,
    PolicyDecision,
    PolicyRequest,
    StoredResponse,
)
from aos_core.ports.messaging import BusMessage, DeadLetter, EventBus, SubscriptionFilter
from aos_core.ports.storage import BlobStore, Document, StateStore

__all__ = [
    "JSON",
    "Agent",
    "AgentIndex",
    "AgentIndexEntry",
    "AgentResult",
    "AuditEntry",
    "AuditLog",
    "AuditVerification",
    "BlobStore",
    "BusMessage",
    "Clock",
    "DeadLetter",
    "Dispatcher",
    "Document",
    "EventBus",
    "IdFactory",
    "IdempotencyKeys",
    "Orchestrations",
    "Policy",
    "PolicyDecision",
    "PolicyRequest",
    "SecretStore",
    "StateStore",
    "StoredResponse",
    "SubscriptionFilter",
    "Telemetry",
]
