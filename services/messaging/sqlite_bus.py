"""The embedded EventBus: Service Bus topics and subscriptions in one SQLite file (WAL).

Semantics follow Azure Service Bus: a publish copies the event to every subscription whose filter matches,
receivers peek-lock messages in sequence order, a lock that expires or an abandon makes the message
available again with its delivery count raised, and at `max_delivery_count` it goes to the dead letters with
reason `MaxDeliveryCountExceeded`. Publishing is idempotent by event id per topic. Every operation is one
transaction on the shared `SqliteDatabase` thread and returns only after COMMIT, so an acknowledged publish or
settle survives kill -9, and two receivers never hold the same message.

Every published event also stays in a per-topic log (even with no subscriptions), which is what duplicate
detection and `conversation` read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aos_core.clock import SystemClock
from aos_core.events import Event, TopicId
from aos_core.ports import BusMessage, Clock, DeadLetter, SubscriptionFilter
from services.messaging import _bus_sql as sql
from services.sqlite import SqliteDatabase

T = TypeVar("T")

UNDECODABLE = "UndecodableMessage"  # dead-letter reason for a stored message that is not an event
_POLL_INTERVAL = 0.05  # seconds; how often a waiting receive looks for scheduled, expired or foreign messages
_SUBSCRIPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,49}$")  # Service Bus subscription name rules


def _stored_event(body: str, seq: int) -> Event:
    """The event a stored row holds; one that does not decode is shown as `aos.undecodable` with its text."""
    try:
        return Event.from_json(body)
    except ValueError:
        return Event(id=f"undecodable-{seq}", type="aos.undecodable", data=str(body)[:4096])


def _check_topic(topic: str) -> str:
    return TopicId(topic).name


def _check_subscription(name: str) -> str:
    if not isinstance(name, str) or not _SUBSCRIPTION_NAME.match(name):
        raise ValueError(f"subscription {name!r} must match {_SUBSCRIPTION_NAME.pattern}")
    return name


def _when(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class SqliteEventBus:
    """An `EventBus` on one SQLite file; production default for `aos serve` and the test backend."""

    def __init__(self, path: str | Path, *, clock: Clock | None = None, synchronous: str = "NORMAL") -> None:
        self.db = SqliteDatabase(path, schema=sql.SCHEMA, synchronous=synchronous)
        self._clock: Clock = clock or SystemClock()
        # Receivers waiting for a message, by (topic, subscription); woken by publishes in this process.
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._closed = False

    @property
    def path(self) -> str:
        return self.db.path

    def _now(self) -> float:
        return self._clock.now().timestamp()

    async def _write(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        return await self.db.write(fn)

    async def _read(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise RuntimeError("the event bus is closed")
        return await self.db.read(fn)

    # --- topics and publishing ----------------------------------------------------------------------

    async def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        filter: SubscriptionFilter | None = None,
        max_delivery_count: int = 10,
        lock_duration: float = 30.0,
    ) -> None:
        """Create the subscription, or update its filter and settings; only later publishes are copied to it."""
        _check_topic(topic)
        _check_subscription(name)
        if max_delivery_count < 1:
            raise ValueError("max_delivery_count must be at least 1")
        if lock_duration <= 0:
            raise ValueError("lock_duration must be positive")
        flt = sql.encode_filter(filter)
        await self._write(lambda c: sql.upsert_subscription(c, topic, name, flt, max_delivery_count, lock_duration))

    async def publish(self, topic: str, event: Event, *, scheduled_time: datetime | None = None) -> None:
        """Copy `event` to each matching subscription, visible now or at `scheduled_time` (by the bus clock).

        A second publish of the same event id on the same topic is ignored (duplicate detection).
        """
        _check_topic(topic)
        body = event.to_json()
        now = self._now()
        if scheduled_time is not None and scheduled_time.tzinfo is None:
            scheduled_time = scheduled_time.replace(tzinfo=UTC)
        available_at = max(now, scheduled_time.timestamp()) if scheduled_time is not None else now
        names = await self._write(lambda c: sql.publish(c, topic, event.id, event.type, event.subject,
                                                        event.correlationid, body, now, available_at))
        if names and available_at <= now:
            for name in names:
                self._wake(topic, name)

    # --- receiving ----------------------------------------------------------------------------------

    async def receive(
        self, topic: str, subscription: str, *, max_messages: int = 1, max_wait: float = 0.0
    ) -> list[BusMessage]:
        """Peek-lock up to `max_messages` messages in sequence order, waiting up to `max_wait` seconds for one.

        The wait is real time: a publish in this process wakes the receiver at once; anything else (scheduled
        messages coming due, expired locks, other processes) is seen by polling every 50 ms.
        """
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        key = (topic, subscription)
        deadline = time.monotonic() + max(0.0, max_wait)
        loop = asyncio.get_running_loop()
        polled = False
        while True:
            # Register before looking, so a publish that commits while we look still wakes us.
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, set()).add(waiter)
            try:
                # A timed-out poll first looks with a read, so idle receivers never take the write lock.
                if polled and not await self._read(lambda c: sql.has_available(c, topic, subscription, self._now())):
                    messages = []
                else:
                    messages = await self._lock(topic, subscription, max_messages)
                remaining = deadline - time.monotonic()
                if messages or remaining <= 0 or self._closed:
                    return messages
                woken, _ = await asyncio.wait({waiter}, timeout=min(_POLL_INTERVAL, remaining))
                if self._closed:
                    return []
                polled = not woken
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]

    async def _lock(self, topic: str, subscription: str, max_messages: int) -> list[BusMessage]:
        now = self._now()
        write = asyncio.ensure_future(
            self._write(lambda c: sql.lock_messages(c, topic, subscription, max_messages, now)))
        try:
            rows = await asyncio.shield(write)
        except asyncio.CancelledError:
            # The transaction may still commit; give back what nobody will ever see, so it is not stranded
            # until its lock expires and the cancellation does not count as a delivery.
            try:
                rows = await write
            except Exception:
                raise asyncio.CancelledError from None
            if rows:
                locks = [(row.seq, row.lock_token) for row in rows]
                await self._write(lambda c: sql.unlock_undelivered(c, locks, self._now()))
                self._wake(topic, subscription)
            raise
        messages = []
        for row in rows:
            try:
                event = Event.from_json(row.body)
            except ValueError as exc:  # no delivery can ever decode it: dead-letter it now, do not hand it out
                await self._write(lambda c, r=row, why=str(exc)[:1024]: sql.dead_letter(
                    c, topic, subscription, r.seq, r.lock_token, now, UNDECODABLE, why))
                continue
            messages.append(BusMessage(event=event, topic=topic, subscription=subscription, sequence_number=row.seq,
                                       delivery_count=row.delivery_count, lock_token=row.lock_token,
                                       locked_until=_when(row.locked_until), enqueued_time=_when(row.enqueued)))
        return messages

    def _wake(self, topic: str, subscription: str) -> None:
        for waiter in self._waiters.get((topic, subscription), ()):
            _set_soon(waiter)

    # --- settling -----------------------------------------------------------------------------------

    async def complete(self, message: BusMessage) -> None:
        """Remove the message. LockLostError if its lock expired or it was settled already."""
        m, now = message, self._now()
        await self._write(lambda c: sql.complete(c, m.topic, m.subscription, m.sequence_number, m.lock_token, now))

    async def abandon(self, message: BusMessage, *, reason: str | None = None) -> None:
        """Release the lock now; at max deliveries dead-letter it (`MaxDeliveryCountExceeded`, `reason`)."""
        m, now = message, self._now()
        available = await self._write(
            lambda c: sql.abandon(c, m.topic, m.subscription, m.sequence_number, m.lock_token, now, reason))
        if available:
            self._wake(m.topic, m.subscription)

    async def dead_letter(self, message: BusMessage, *, reason: str, description: str | None = None) -> None:
        """Move the message to the subscription's dead letters with `reason`."""
        m, now = message, self._now()
        await self._write(lambda c: sql.dead_letter(c, m.topic, m.subscription, m.sequence_number, m.lock_token, now,
                                                    reason, description))

    async def renew_lock(self, message: BusMessage) -> BusMessage:
        """Extend the lock by the subscription's lock duration from now; returns the message with the new expiry."""
        m, now = message, self._now()
        until = await self._write(
            lambda c: sql.renew_lock(c, m.topic, m.subscription, m.sequence_number, m.lock_token, now))
        return dataclasses.replace(message, locked_until=_when(until))

    # --- dead letters, stats, conversations ----------------------------------------------------------

    async def dead_letters(self, topic: str, subscription: str) -> list[DeadLetter]:
        """The subscription's dead letters in sequence order (expired last deliveries are moved there first)."""
        now = self._now()
        rows = await self._write(lambda c: sql.list_dead_letters(c, topic, subscription, now))
        return [DeadLetter(event=_stored_event(body, seq), topic=topic, subscription=subscription, sequence_number=seq,
                           delivery_count=count, reason=reason, description=description,
                           dead_lettered_time=_when(when))
                for seq, count, reason, description, when, body in rows]

    async def resubmit_dead_letter(self, topic: str, subscription: str, sequence_number: int) -> int:
        """Put a dead letter back on its subscription as a new message; returns its new sequence number."""
        now = self._now()
        seq = await self._write(lambda c: sql.resubmit(c, topic, subscription, sequence_number, now))
        self._wake(topic, subscription)
        return seq

    async def stats(self, topic: str, subscription: str) -> dict[str, int]:
        """Message counts: `active` (receivable now), `scheduled`, `locked`, `dead_lettered`; disjoint."""
        now = self._now()
        return await self._write(lambda c: sql.stats(c, topic, subscription, now))

    async def conversation(self, correlation_id: str) -> list[Event]:
        """Every event published with this correlation id on any topic, in publish order, each once."""
        bodies = await self._read(lambda c: sql.conversation(c, correlation_id))
        events: dict[str, Event] = {}
        for body in bodies:
            event = Event.from_json(body)
            events.setdefault(event.id, event)  # the same event published on two topics is one message
        return list(events.values())

    async def close(self) -> None:
        """Wake waiting receivers (they return nothing) and close the database after pending work commits."""
        if self._closed:
            return
        self._closed = True
        for waiters in list(self._waiters.values()):
            for waiter in waiters:
                _set_soon(waiter)
        await self.db.close()


def _set_soon(waiter: asyncio.Future[None]) -> None:
    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    # A receiver may wait on another event loop (or thread) than the publisher's.
    try:
        waiter.get_loop().call_soon_threadsafe(wake)
    except RuntimeError:  # that loop is closed; nobody is waiting any more
        pass
