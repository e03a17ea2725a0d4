"""Service Bus triggers fed by the embedded SQLite bus (services/messaging/sqlite_bus.py).

Each trigger's `%SETTING%` topic and subscription names are resolved, its subscription is created, and up to
`maxConcurrentCalls` receivers peek-lock messages from it. Success completes the message; an exception
abandons it (it comes back with a higher delivery count) and at the subscription's max delivery count the bus
dead-letters it with the error as the description. Locks are renewed while a function runs. A queue trigger
reads the queue as a topic with one subscription named `queue`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from azure.functions.servicebus import ServiceBusMessage

from aos_core.errors import LockLostError, NotFoundError
from aos_core.events import Event, TopicId
from aos_core.ports import BusMessage
from services.devhost.index import FunctionSpec
from services.devhost.invoker import Invoker
from services.devhost.settings import HostSettings, resolve
from services.messaging.cloudevents_amqp import STRUCTURED_CONTENT_TYPE, application_properties
from services.messaging.sqlite_bus import SqliteEventBus

log = logging.getLogger("aos.devhost.servicebus")
QUEUE_SUBSCRIPTION = "queue"


@dataclass(frozen=True)
class SubscriptionTrigger:
    spec: FunctionSpec
    topic: str
    subscription: str


def to_service_bus_message(message: BusMessage) -> ServiceBusMessage:
    """The message object the worker builds (`azure.functions.servicebus.ServiceBusMessage`, a subclass of
    `azure.functions.ServiceBusMessage`), carrying the event as a structured CloudEvent."""
    event = message.event
    props: dict[str, Any] = dict(application_properties(event))
    body = event.to_json().encode()
    metadata = {"MessageId": event.id, "DeliveryCount": message.delivery_count, "SequenceNumber":
                message.sequence_number, "EnqueuedTimeUtc": message.enqueued_time.isoformat(),
                "ContentType": STRUCTURED_CONTENT_TYPE, "CorrelationId": event.correlationid,
                "ApplicationProperties": props, "UserProperties": props}
    return ServiceBusMessage(
        body=body, trigger_metadata=metadata, application_properties=props, content_type=STRUCTURED_CONTENT_TYPE,
        correlation_id=event.correlationid, delivery_count=message.delivery_count,
        enqueued_sequence_number=message.sequence_number, enqueued_time_utc=message.enqueued_time,
        locked_until=message.locked_until, lock_token=message.lock_token, message_id=event.id,
        sequence_number=message.sequence_number, session_id=None, subject=None, user_properties=props)


class ServiceBusTriggers:
    def __init__(self, functions: list[FunctionSpec], settings: HostSettings, bus: SqliteEventBus,
                 invoker: Invoker, extra_inputs: Any) -> None:
        self._settings = settings
        self._bus = bus
        self._invoker = invoker
        self._extra_inputs = extra_inputs
        self.triggers: list[SubscriptionTrigger] = []
        for spec in functions:
            if spec.trigger_type != "serviceBusTrigger":
                continue
            where = f"function {spec.name}"
            if spec.trigger.get("queueName"):
                topic, sub = resolve(spec.trigger["queueName"], where), QUEUE_SUBSCRIPTION
            else:
                topic = resolve(spec.trigger.get("topicName"), where)
                sub = resolve(spec.trigger.get("subscriptionName"), where)
            self.triggers.append(SubscriptionTrigger(spec, str(topic), str(sub)))
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for trigger in self.triggers:
            await self._bus.create_subscription(trigger.topic, trigger.subscription,
                                                max_delivery_count=self._settings.max_delivery_count,
                                                lock_duration=self._settings.lock_duration)
            self._tasks.append(asyncio.create_task(self._receive_loop(trigger), name=f"servicebus:{trigger.spec.name}"))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _receive_loop(self, trigger: SubscriptionTrigger) -> None:
        # One receiver per subscription locks as many messages as there are free slots (maxConcurrentCalls) and
        # runs each in a task of its own: one poll of the bus per interval, however many calls may run at once.
        limit = max(1, self._settings.max_concurrent_calls)
        running: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping:
                if len(running) >= limit:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    messages = await self._bus.receive(trigger.topic, trigger.subscription,
                                                       max_messages=limit - len(running), max_wait=1.0)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("receiving from %s/%s failed", trigger.topic, trigger.subscription)
                    await asyncio.sleep(1.0)
                    continue
                for message in messages:
                    task = asyncio.create_task(self._settle(trigger, message))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _settle(self, trigger: SubscriptionTrigger, message: BusMessage) -> None:
        try:
            await self.process(trigger, message)
        except asyncio.CancelledError:
            raise
        except Exception:  # settling failed (bus closed, disk full): the lock expires and it comes back
            log.exception("message %s on %s/%s could not be settled", message.event.id, trigger.topic,
                          trigger.subscription)

    async def process(self, trigger: SubscriptionTrigger, message: BusMessage) -> bool:
        """Run the function on one locked message and settle it; True when it completed."""
        renewer = asyncio.create_task(self._renew(message))
        kwargs = {trigger.spec.trigger["name"]: to_service_bus_message(message), **self._extra_inputs(trigger.spec)}
        try:
            await self._invoker.invoke(trigger.spec, kwargs)
        except Exception as exc:
            renewer.cancel()
            reason = f"{type(exc).__name__}: {exc}"[:1024]
            with contextlib.suppress(LockLostError):
                await self._bus.abandon(message, reason=reason)
                if message.delivery_count >= self._settings.max_delivery_count:
                    log.error("message %s on %s/%s dead-lettered after %d deliveries: %s", message.event.id,
                              trigger.topic, trigger.subscription, message.delivery_count, reason)
            return False
        finally:
            renewer.cancel()
        try:
            await self._bus.complete(message)
        except LockLostError:
            log.warning("message %s: lock lost before completing; it will be delivered again", message.event.id)
            return False
        return True

    async def _renew(self, message: BusMessage) -> None:
        with contextlib.suppress(LockLostError, RuntimeError):
            while True:
                await asyncio.sleep(self._settings.lock_duration / 2)
                message = await self._bus.renew_lock(message)


async def publish(bus: SqliteEventBus, topic: str, payload: Any) -> list[str]:
    """Post CloudEvents (an object or an array) to `topic`; returns the event ids. ValueError if one is invalid,
    NotFoundError if no subscription listens to the topic (here a topic exists once something subscribes)."""
    TopicId(topic)  # ValueError for a name no topic can have
    items = payload if isinstance(payload, list) else [payload]
    events = [Event.model_validate(item) for item in items]
    if not await _has_subscription(bus, topic):
        raise NotFoundError(f"no subscription listens to topic {topic!r}; nothing would receive the message")
    for event in events:
        await bus.publish(topic, event)
    return [e.id for e in events]


async def _has_subscription(bus: SqliteEventBus, topic: str) -> bool:
    """Whether any subscription listens to `topic` (a local topic exists once something subscribes to it)."""
    def query(conn: Any) -> bool:
        return conn.execute("SELECT 1 FROM bus_subscriptions WHERE topic = ? LIMIT 1", (topic,)).fetchone() is not None

    return await bus.db.read(query)
