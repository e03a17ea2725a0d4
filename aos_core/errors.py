"""Typed errors shared by the kernel and every adapter, so callers can map them to HTTP statuses."""

from __future__ import annotations

from collections.abc import Iterator


class AOSError(Exception):
    """Base of every AOS error."""


class ConfigError(AOSError, ValueError):
    """A configuration value is missing or invalid; the message names the key and its source."""


class NotFoundError(AOSError, LookupError):
    """The addressed document, agent, topic or workflow does not exist."""


class ConflictError(AOSError):
    """A write lost a race: the ETag (or create-only precondition) no longer holds."""

    def __init__(self, key: str, detail: str = "precondition failed") -> None:
        super().__init__(f"{key}: {detail}")
        self.key = key


class RegistrationError(AOSError, ValueError):
    """An agent cannot be registered: unknown type, id clash, missing dependency or a cycle."""


class IllegalTransitionError(AOSError):
    """A lifecycle transition that the state machine does not allow; nothing was changed."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"illegal lifecycle transition {current} -> {target}")
        self.current = current
        self.target = target


class AgentUnavailableError(AOSError):
    """The agent is Failed or Terminated and cannot take events."""


class InvalidEventError(AOSError, ValueError):
    """An agent refuses an event whose data it cannot accept: the event is `rejected` with this message, nothing
    of the agent's state changes, and the agent stays healthy (bad input is not an agent failure)."""


class LockLostError(AOSError):
    """A bus message's peek-lock expired or the message was already settled."""


def problem_body(status: int, title: str, detail: str | None = None, **extra: object) -> dict[str, object]:
    """The RFC 9457 problem body every error answer of AOS uses (the app, the local host, the MCP endpoint):
    `type` is `urn:aos:problem:<title as a slug>`; None values are left out."""
    body: dict[str, object] = {"type": f"urn:aos:problem:{title.lower().replace(' ', '-')}", "title": title,
                               "status": status, "detail": detail, **extra}
    return {k: v for k, v in body.items() if v is not None}


class PolicyDenied(AOSError, PermissionError):
    """An action was refused by policy rule `rule_id` (a 403 problem body naming the rule); it was audited."""

    def __init__(self, rule_id: str, reason: str, audit_seq: int | None = None) -> None:
        super().__init__(f"denied by policy {rule_id}: {reason}")
        self.rule_id = rule_id
        self.reason = reason
        self.audit_seq = audit_seq

    def problem(self) -> dict[str, object]:
        """The RFC 9457 problem body for the 403 answer."""
        return problem_body(403, "Denied by policy", self.reason, rule_id=self.rule_id, audit_seq=self.audit_seq)


class IdempotencyMismatch(AOSError, ValueError):
    """The idempotency key was used before with a different request body (answer 422)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was already used with a different request")
        self.key = key


class IdempotencyInProgress(AOSError):
    """A request with this idempotency key is still running (answer 409 with Retry-After)."""

    def __init__(self, key: str, retry_after: float) -> None:
        super().__init__(f"a request with Idempotency-Key {key!r} is still in progress")
        self.key = key
        self.retry_after = retry_after


class StorageUnavailableError(AOSError):
    """Storage refused an operation (disk full, I/O error, locked past the timeout): the operation failed and
    changed nothing; it is safe to retry once the fault clears (a 503 naming storage)."""


def outage_pauses(first: float = 0.5, longest: float = 30.0) -> Iterator[float]:
    """Seconds to wait between tries of work that met StorageUnavailableError: doubling from `first` up to
    `longest`, for as long as the caller keeps trying (work whose senders were answered must not give up)."""
    pause = first
    while True:
        yield pause
        pause = min(pause * 2, longest)
