"""Reliability mechanisms every adapter shares: circuit breakers, retries, timeouts, idempotency, state machines."""

from __future__ import annotations

from services.reliability.breaker import BreakerRegistry, CircuitBreaker, CircuitOpenError
from services.reliability.idempotency import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    IdempotencyStore,
    StoredResponse,
    request_hash,
)
from services.reliability.retry import is_transient, retry_async, retry_sync
from services.reliability.state_machine import InvalidTriggerError, StateMachine
from services.reliability.timeouts import OperationTimeoutError, with_timeout

__all__ = [
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitOpenError",
    "IdempotencyInProgress",
    "IdempotencyMismatch",
    "IdempotencyStore",
    "InvalidTriggerError",
    "OperationTimeoutError",
    "StateMachine",
    "StoredResponse",
    "is_transient",
    "request_hash",
    "retry_async",
    "retry_sync",
    "with_timeout",
]
