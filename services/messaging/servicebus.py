"""Publishing to Azure Service Bus (azure-servicebus, async): the message mapping, a batching sender, and the
EventBus adapter the kernel publishes through. Receiving is the Functions Service Bus trigger
(`cloudevents_amqp.event_from_message`), not this module.

Imported only when `messaging.backend = "servicebus"`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import (
    MessageSizeExceededError,
    OperationTimeoutError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)

from aos_core.clock import SystemClock
from aos_core.errors import AOSError
from aos_core.events import Event, TopicId
from aos_core.ports import BusMessage, Clock, DeadLetter, SubscriptionFilter
from services.messaging.cloudevents_amqp import STRUCTURED_CONTENT_TYPE, application_properties
from services.storage.connections import ServiceBusConnection

# The SDK retries each operation itself (exponential, `retry_total` times); these are retried once more here,
# on our clock, after the SDK gave up: a namespace that is briefly unreachable or busy.
TRANSIENT = (ServiceBusConnectionError, ServiceBusCommunicationError, ServiceBusServerBusyError, OperationTimeoutError)


class BusUnavailableError(AOSError):
    """Service Bus could not be reached or refused the send after retries; the message names namespace and topic."""


def to_message(event: Event, *, session_id: str | None = None) -> ServiceBusMessage:
    """The Service Bus message for `event`: structured-mode CloudEvent body, attributes as application properties.

    `message_id` is the event id (duplicate detection drops a re-publish), `subject` the event type,
    `correlation_id` the conversation, `session_id` (when given) keeps a conversation in order on sessions.
    """
    return ServiceBusMessage(
        event.to_json(),
        content_type=STRUCTURED_CONTENT_TYPE,
        message_id=event.id,
        correlation_id=event.correlationid,
        session_id=session_id,
        subject=event.type,
        application_properties=application_properties(event),  # type: ignore[arg-type]
    )


class ServiceBusSender:
    """Sends events to topics in as few batches as fit, with one sender link per topic kept open."""

    def __init__(self, client: Any, *, namespace: str = "", sessions: bool = True, attempts: int = 3,
                 backoff: float = 1.0, clock: Clock | None = None) -> None:
        self._client = client
        self._namespace = namespace or str(getattr(client, "fully_qualified_namespace", "") or "")
        self._sessions = sessions
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._clock = clock or SystemClock()
        self._senders: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def message(self, event: Event, scheduled_time: datetime | None = None) -> ServiceBusMessage:
        message = to_message(event, session_id=event.correlationid if self._sessions else None)
        if scheduled_time is not None:
            when = scheduled_time if scheduled_time.tzinfo else scheduled_time.replace(tzinfo=UTC)
            message.scheduled_enqueue_time_utc = when.astimezone(UTC)
        return message

    async def _sender(self, topic: str) -> Any:
        async with self._lock:
            sender = self._senders.get(topic)
            if sender is None:
                sender = self._senders[topic] = self._client.get_topic_sender(topic_name=topic)
            return sender

    async def send(self, topic: str, events: Sequence[Event], *, scheduled_time: datetime | None = None) -> int:
        """Send `events` to `topic` in order; returns how many batches it took. BusUnavailableError after retries."""
        TopicId(topic)  # a bad topic name is a ValueError before anything is sent
        if not events:
            return 0
        messages = [self.message(event, scheduled_time) for event in events]
        sender = await self._sender(topic)
        batches = 0
        batch = await self._retry(topic, sender.create_message_batch)
        for message in messages:
            try:
                batch.add_message(message)
                continue
            except MessageSizeExceededError:
                if len(batch) == 0:
                    raise ValueError(f"event {message.message_id} is larger than the largest Service Bus message "
                                     f"({batch.max_size_in_bytes} bytes)") from None
            await self._retry(topic, sender.send_messages, batch)
            batches += 1
            batch = await self._retry(topic, sender.create_message_batch)
            batch.add_message(message)
        await self._retry(topic, sender.send_messages, batch)
        return batches + 1

    async def _retry(self, topic: str, operation: Any, *args: Any) -> Any:
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return await operation(*args)
            except TRANSIENT as exc:
                if attempt == self._attempts:
                    raise BusUnavailableError(
                        f"Service Bus {self._namespace or 'namespace'} topic {topic!r}: unreachable or busy after "
                        f"{attempt} attempts ({type(exc).__name__}: {str(exc)[:200]})"
                    ) from exc
            except ServiceBusError as exc:  # not found, unauthorized, quota: retrying will not help
                raise BusUnavailableError(f"Service Bus {self._namespace or 'namespace'} topic {topic!r}: "
                                          f"{type(exc).__name__}: {str(exc)[:200]}") from exc
            await self._clock.sleep(delay)
            delay *= 2

    async def close(self) -> None:
        senders = list(self._senders.values())
        self._senders.clear()
        for sender in senders:
            await sender.close()


class ServiceBusEventBus:
    """The EventBus port on Service Bus, publish side: `publish` sends; receiving is the Functions trigger.

    Topics and subscriptions are provisioned with the app (infra/), so `create_subscription` checks nothing and
    returns; the receive-side methods raise NotImplementedError naming the trigger that does that job on Azure.
    """

    def __init__(self, connection: ServiceBusConnection, *, sender: ServiceBusSender | None = None,
                 clock: Clock | None = None) -> None:
        self.connection = connection
        self._sender = sender
        self._clock = clock
        self._client: Any = None  # this bus's own AMQP connection, opened on the first send

    @property
    def sender(self) -> ServiceBusSender:
        if self._sender is None:
            # One client per bus, and the kernel keeps one bus: an AMQP connection is expensive, so it is shared
            # by every send of the kernel and closed with it.
            self._client = self.connection.client()
            self._sender = ServiceBusSender(self._client, namespace=self.connection.namespace or "",
                                            clock=self._clock)
        return self._sender

    async def create_subscription(self, topic: str, name: str, *, filter: SubscriptionFilter | None = None,
                                  max_delivery_count: int = 10, lock_duration: float = 30.0) -> None:
        """Nothing to do: Service Bus topics and subscriptions are deployed with the app (infra/ Bicep)."""

    async def publish(self, topic: str, event: Event, *, scheduled_time: datetime | None = None) -> None:
        """Send `event` to `topic` (now, or enqueued at `scheduled_time`)."""
        await self.sender.send(topic, [event], scheduled_time=scheduled_time)

    async def publish_many(self, topic: str, events: Sequence[Event]) -> None:
        """Send several events in as few batches as fit."""
        await self.sender.send(topic, events)

    def _receive_side(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"ServiceBusEventBus.{what}: on Azure the Functions Service Bus trigger receives "
                                   "and settles messages (function_app); this adapter only publishes")

    async def receive(self, topic: str, subscription: str, *, max_messages: int = 1,
                      max_wait: float = 0.0) -> list[BusMessage]:
        raise self._receive_side("receive")

    async def complete(self, message: BusMessage) -> None:
        raise self._receive_side("complete")

    async def abandon(self, message: BusMessage, *, reason: str | None = None) -> None:
        raise self._receive_side("abandon")

    async def dead_letter(self, message: BusMessage, *, reason: str, description: str | None = None) -> None:
        raise self._receive_side("dead_letter")

    async def renew_lock(self, message: BusMessage) -> BusMessage:
        raise self._receive_side("renew_lock")

    async def dead_letters(self, topic: str, subscription: str) -> list[DeadLetter]:
        raise self._receive_side("dead_letters")

    async def conversation(self, correlation_id: str) -> list[Event]:
        raise self._receive_side("conversation")

    async def close(self) -> None:
        """Close this bus's sender links and the client it opened."""
        if self._sender is not None:
            await self._sender.close()
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()
