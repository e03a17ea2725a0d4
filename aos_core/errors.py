"""Typed errors shared by the kernel and every adapter, so callers can map them to HTTP statuses."""

from __future__ import annotations


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


class LockLostError(AOSError):
    """A bus message's peek-lock expired or the message was already settled."""
