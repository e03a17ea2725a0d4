"""The message bus API AOS users write: publish, subscribe with a handler, direct agent messages.

`MessageBus` works on any `EventBus` (the embedded `SqliteEventBus` or Service Bus). Delivery is at least
once: a handler can see the same event again (after a crash, a lost lock or a failed settle), so handlers must
be idempotent by `event.id`. A handler that raises gets the message back later; after the subscription's
`max_delivery_count` deliveries it is dead-lettered with the exception text as description.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aos_core.errors import LockLostError
from aos_core.events import AgentId, Event, validate_id
from aos_core.ports import JSON, BusMessage, Clock, EventBus, SubscriptionFilter

log = logging.getLogger(__name__)

AGENT_MESSAGES_TOPIC = "agent.messages"
DEFAULT_MESSAGE_TYPE = "aos.message"

Handler = Callable[[Event], Any]  # async def handler(event), or a plain function (run in a worker thread)

_RETRY_AFTER_ERROR = 0.5  # seconds a pump rests after the bus itself failed, so an outage is not a busy loop
_MAX_DESCRIPTION = 4096  # Service Bus's limit on a dead-letter error description


def subscription_name(handler: Handler) -> str:
    """A stable subscription name for `handler`: its name plus a hash of its module and qualified name."""
    target = getattr(handler, "func", handler)  # functools.partial
    qualname = getattr(target, "__qualname__", type(target).__qualname__)
    module = getattr(target, "__module__", "") or ""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", qualname.rsplit(".", 1)[-1]).strip("-._") or "handler"
    digest = hashlib.sha256(f"{module}:{qualname}".encode()).hexdigest()[:10]
    return f"{base[:39]}-{digest}"


class Subscription:
    """A running subscription: `concurrency` pumps that receive, call the handler and settle each message."""

    def __init__(self, bus: EventBus, topic: str, name: str, handler: Handler, *, concurrency: int = 1,
                 max_wait: float = 1.0) -> None:
        self.topic = topic
        self.name = name
        self._bus = bus
        self._handler = handler
        self._max_wait = max_wait
        self._stopping = False
        self._receiving: set[asyncio.Task[None]] = set()  # pumps waiting in receive, safe to cancel there
        self._tasks = [asyncio.create_task(self._pump(), name=f"pump:{topic}/{name}:{n}") for n in range(concurrency)]

    @property
    def running(self) -> bool:
        return not self._stopping and any(not t.done() for t in self._tasks)

    async def close(self, *, drain_timeout: float = 10.0) -> None:
        """Stop the pumps: idle ones at once, busy ones after their current message (or `drain_timeout` s)."""
        self._stopping = True
        for task in self._receiving:
            task.cancel()  # a cancelled receive gives back whatever it had just locked
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]  # a handler may close its own subscription
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=drain_timeout)
        for task in pending:
            task.cancel()  # the handler is interrupted; its message is abandoned for redelivery
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:
            self._receiving.add(task)
            try:
                messages = await self._bus.receive(self.topic, self.name, max_messages=1, max_wait=self._max_wait)
            except asyncio.CancelledError:
                if self._stopping:
                    return
                raise
            except Exception:
                log.exception("receive from %s/%s failed", self.topic, self.name)
                await asyncio.sleep(_RETRY_AFTER_ERROR)
                continue
            finally:
                self._receiving.discard(task)
            for message in messages:
                await self._handle(message)

    async def _handle(self, message: BusMessage) -> None:
        try:
            await _call(self._handler, message.event)
        except asyncio.CancelledError:
            await _settle(asyncio.shield(self._bus.abandon(message, reason="subscription closed while handling")))
            raise
        except Exception as exc:
            log.warning("handler for %s/%s failed on event %s (delivery %d): %r", self.topic, self.name,
                        message.event.id, message.delivery_count, exc)
            description = f"{type(exc).__name__}: {exc}"[:_MAX_DESCRIPTION]
            await _settle(self._bus.abandon(message, reason=description))
        else:
            await _settle(self._bus.complete(message))


async def _call(handler: Handler, event: Event) -> Any:
    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(type(handler).__call__):
        return await handler(event)
    result = await asyncio.to_thread(handler, event)  # a blocking handler must not stall the other pumps
    if inspect.isawaitable(result):
        result = await result
    return result


async def _settle(settlement: Any) -> None:
    try:
        await settlement
    except LockLostError as exc:
        # The lock expired while the handler ran: the message comes back (at least once), nothing is lost.
        log.warning("could not settle: %s", exc)
    except Exception:
        log.exception("could not settle a message; it will be redelivered when its lock expires")


def _agent_key(agent: str | AgentId, what: str) -> str:
    return agent.key if isinstance(agent, AgentId) else validate_id(agent, what)


class MessageBus:
    """Publish events, subscribe handlers and send direct agent messages over an `EventBus`."""

    def __init__(self, bus: EventBus, *, source: str = "aos", owns_bus: bool = False) -> None:
        self.bus = bus
        self.source = source
        self._owns_bus = owns_bus
        self._subscriptions: list[Subscription] = []
        self._closed = False

    @classmethod
    def open(cls, path: str | Path, *, clock: Clock | None = None, source: str = "aos") -> MessageBus:
        """A MessageBus on its own `SqliteEventBus` at `path`, closed with it."""
        from services.messaging.sqlite_bus import SqliteEventBus

        return cls(SqliteEventBus(path, clock=clock), source=source, owns_bus=True)

    async def publish(self, topic: str, message: Event | JSON, *,
                      event_type: str | None = None, subject: str | None = None,
                      correlation_id: str | None = None) -> Event:
        """Publish `message` on `topic` and return the Event sent.

        An `Event` goes as is (with any of `event_type`, `subject`, `correlation_id` given applied to it); any
        other JSON value becomes the data of a new Event whose type is `event_type`, else the dict's "type"
        key, else "aos.message".
        """
        if isinstance(message, Event):
            updates = {k: v for k, v in (("type", event_type), ("subject", subject),
                                         ("correlationid", correlation_id)) if v is not None}
            event = Event.model_validate({**message.model_dump(), **updates}) if updates else message
        else:
            from_dict = message.get("type") if isinstance(message, dict) else None
            event = Event(type=event_type or (from_dict if isinstance(from_dict, str) else DEFAULT_MESSAGE_TYPE),
                          source=self.source, subject=subject, data=message, correlationid=correlation_id)
        await self.bus.publish(topic, event)
        return event

    async def subscribe(self, topic: str, handler: Handler, *,
                        subscription: str | None = None, filter: SubscriptionFilter | None = None,
                        max_delivery_count: int = 10, lock_duration: float = 30.0, concurrency: int = 1,
                        max_wait: float = 1.0) -> Subscription:
        """Create (or update) the subscription and start calling `handler(event)` for each message.

        The subscription is durable: it is named `subscription`, or after the handler (stable across restarts),
        and keeps collecting messages while nobody listens. Two subscribes with the same name compete for its
        messages; different names each get a copy. Handlers must be idempotent by `event.id` (at-least-once).
        """
        if self._closed:
            raise RuntimeError("the message bus is closed")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        name = subscription or subscription_name(handler)
        await self.bus.create_subscription(topic, name, filter=filter, max_delivery_count=max_delivery_count,
                                           lock_duration=lock_duration)
        sub = Subscription(self.bus, topic, name, handler, concurrency=concurrency, max_wait=max_wait)
        self._subscriptions.append(sub)
        return sub

    async def subscribe_agent(self, agent: str | AgentId, handler: Handler, **options: Any) -> Subscription:
        """Receive the direct messages sent to `agent` (see `send_agent_message`)."""
        key = _agent_key(agent, "agent id")
        return await self.subscribe(AGENT_MESSAGES_TOPIC, handler, subscription=options.pop("subscription", key),
                                    filter=SubscriptionFilter(subject=key), **options)

    async def send_agent_message(self, from_agent: str | AgentId, to_agent: str | AgentId, message: JSON, *,
                                 correlation_id: str | None = None, message_type: str = DEFAULT_MESSAGE_TYPE) -> Event:
        """Send `message` from one agent to another on `agent.messages` (subject = recipient's key).

        Without `correlation_id` a new one is made, so a reply sent with the returned event's `correlationid`
        joins the same `conversation`.
        """
        sender, recipient = _agent_key(from_agent, "from_agent"), _agent_key(to_agent, "to_agent")
        event = Event(type=message_type, source=f"agents/{sender}", subject=recipient, data=message,
                      correlationid=correlation_id or str(uuid.uuid4()))
        await self.bus.publish(AGENT_MESSAGES_TOPIC, event)
        return event

    async def conversation(self, correlation_id: str) -> list[Event]:
        """Every event published with this correlation id, in publish order."""
        return await self.bus.conversation(correlation_id)

    async def close(self) -> None:
        """Stop every subscription's pumps; close the bus only if this MessageBus opened it."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(sub.close() for sub in self._subscriptions))
        self._subscriptions.clear()
        if self._owns_bus:
            await self.bus.close()
