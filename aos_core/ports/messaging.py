"""The event bus port: topics, subscriptions with filters, peek-lock, dead letters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from aos_core.events import Event


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
