"""SqliteEventBus: Service Bus topic/subscription semantics on a real SQLite file, time from a ManualClock."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aos_core.errors import LockLostError, NotFoundError
from aos_core.events import Event
from aos_core.ports import BusMessage, EventBus, SubscriptionFilter
from aos_core.testing import ManualClock
from services.messaging import SqliteEventBus


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def bus(tmp_path: Path, clock: ManualClock) -> AsyncIterator[SqliteEventBus]:
    bus = SqliteEventBus(tmp_path / "bus.db", clock=clock)
    yield bus
    await bus.close()


def ev(n: int | str, type: str = "order.created", **fields: Any) -> Event:
    return Event(id=f"e{n}", type=type, data={"n": n}, **fields)


def ids(messages: list[BusMessage]) -> list[str]:
    return [m.event.id for m in messages]


async def drain(bus: SqliteEventBus, topic: str, sub: str) -> list[str]:
    out: list[str] = []
    while batch := await bus.receive(topic, sub, max_messages=100):
        out += ids(batch)
        for message in batch:
            await bus.complete(message)
    return out


def test_implements_the_port(tmp_path: Path) -> None:
    assert isinstance(SqliteEventBus(tmp_path / "b.db"), EventBus)


async def test_publish_fans_out_to_every_subscription_in_order(bus: SqliteEventBus) -> None:
    for name in ("audit", "billing", "mail"):
        await bus.create_subscription("orders", name)
    for n in range(5):
        await bus.publish("orders", ev(n))
    for name in ("audit", "billing", "mail"):
        assert await drain(bus, "orders", name) == [f"e{n}" for n in range(5)]


async def test_receive_is_fifo_and_respects_max_messages(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await asyncio.gather(*(bus.publish("orders", ev(n)) for n in range(10)))
    first = await bus.receive("orders", "audit", max_messages=4)
    second = await bus.receive("orders", "audit", max_messages=4)
    assert len(first) == len(second) == 4
    sequence = [m.sequence_number for m in first + second]
    assert sequence == sorted(sequence) and len(set(sequence)) == 8
    assert all(m.delivery_count == 1 and m.topic == "orders" and m.subscription == "audit" for m in first)


async def test_filters_pick_by_type_glob_subject_and_correlation(bus: SqliteEventBus) -> None:
    await bus.create_subscription("t", "orders", filter=SubscriptionFilter(event_types=("order.*", "refund")))
    await bus.create_subscription("t", "cfo", filter=SubscriptionFilter(subject="cfo"))
    await bus.create_subscription("t", "conv", filter=SubscriptionFilter(correlationid="c1"))
    await bus.create_subscription("t", "all")
    await bus.publish("t", ev(1, "order.created"))
    await bus.publish("t", ev(2, "refund", subject="cfo"))
    await bus.publish("t", ev(3, "Order.created", correlationid="c1"))  # globs are case-sensitive
    await bus.publish("t", ev(4, "invoice.sent", subject="cto", correlationid="c2"))
    assert await drain(bus, "t", "orders") == ["e1", "e2"]
    assert await drain(bus, "t", "cfo") == ["e2"]
    assert await drain(bus, "t", "conv") == ["e3"]
    assert await drain(bus, "t", "all") == ["e1", "e2", "e3", "e4"]


async def test_duplicate_event_id_on_a_topic_is_ignored(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.create_subscription("other", "audit")
    await bus.publish("orders", ev(1))
    await bus.publish("orders", Event(id="e1", type="order.changed", data="other body, same id"))
    await bus.publish("other", ev(1))  # detection is per topic
    [message] = await bus.receive("orders", "audit", max_messages=5)
    assert message.event.type == "order.created"
    await bus.complete(message)
    assert await drain(bus, "other", "audit") == ["e1"]
    await bus.publish("orders", ev(1))  # also after the first copy was completed
    assert await drain(bus, "orders", "audit") == []


async def test_publish_with_no_subscription_is_only_logged(bus: SqliteEventBus) -> None:
    await bus.publish("orders", ev(1, correlationid="c"))
    await bus.create_subscription("orders", "late")
    assert await bus.receive("orders", "late") == []
    assert [e.id for e in await bus.conversation("c")] == ["e1"]


async def test_locked_message_is_not_delivered_twice(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev(1))
    [message] = await bus.receive("orders", "audit")
    assert await bus.receive("orders", "audit") == []
    assert await bus.stats("orders", "audit") == {"active": 0, "scheduled": 0, "locked": 1, "dead_lettered": 0}
    await bus.complete(message)
    assert await bus.stats("orders", "audit") == {"active": 0, "scheduled": 0, "locked": 0, "dead_lettered": 0}
    with pytest.raises(LockLostError):
        await bus.complete(message)  # settled already


async def test_concurrent_receivers_get_disjoint_messages(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await asyncio.gather(*(bus.publish("orders", ev(n)) for n in range(60)))

    async def receiver() -> list[str]:
        got: list[str] = []
        while batch := await bus.receive("orders", "audit", max_messages=3):
            got += ids(batch)
            await asyncio.gather(*(bus.complete(m) for m in batch))
        return got

    results = await asyncio.gather(*(receiver() for _ in range(8)))
    everything = [i for got in results for i in got]
    assert sorted(everything) == sorted(f"e{n}" for n in range(60))
    assert sum(1 for got in results if got) > 1


async def test_abandon_redelivers_now_with_a_higher_count(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev(1))
    await bus.publish("orders", ev(2))
    [first] = await bus.receive("orders", "audit")
    await bus.abandon(first, reason="not now")
    [again] = await bus.receive("orders", "audit")
    assert again.event.id == "e1" and again.delivery_count == 2 and again.lock_token != first.lock_token
    with pytest.raises(LockLostError):
        await bus.abandon(first)  # the old lock is gone


async def test_explicit_dead_letter_and_resubmit(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev(1))
    [message] = await bus.receive("orders", "audit")
    await bus.dead_letter(message, reason="BadOrder", description="no customer")
    assert await bus.receive("orders", "audit") == []
    [letter] = await bus.dead_letters("orders", "audit")
    assert (letter.event.id, letter.reason, letter.description) == ("e1", "BadOrder", "no customer")
    assert letter.sequence_number == message.sequence_number and letter.dead_lettered_time == clock.now()
    new_seq = await bus.resubmit_dead_letter("orders", "audit", letter.sequence_number)
    assert new_seq > message.sequence_number
    assert await bus.dead_letters("orders", "audit") == []
    [back] = await bus.receive("orders", "audit")
    assert (back.event.id, back.delivery_count, back.sequence_number) == ("e1", 1, new_seq)
    with pytest.raises(NotFoundError):
        await bus.resubmit_dead_letter("orders", "audit", letter.sequence_number)


async def test_lock_expiry_redelivers_and_counts(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit", lock_duration=10)
    await bus.publish("orders", ev(1))
    [first] = await bus.receive("orders", "audit")
    assert first.locked_until == clock.now() + timedelta(seconds=10)
    await clock.advance(9)
    assert await bus.receive("orders", "audit") == []
    await clock.advance(1)  # the lock ends exactly now
    [second] = await bus.receive("orders", "audit")
    assert second.delivery_count == 2 and second.event.id == "e1"
    with pytest.raises(LockLostError):
        await bus.complete(first)
    await bus.complete(second)


async def test_late_settle_raises_lock_lost_and_renew_extends(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit", lock_duration=30)
    await bus.publish("orders", ev(1))
    await bus.publish("orders", ev(2))
    [a, b] = await bus.receive("orders", "audit", max_messages=2)
    await clock.advance(20)
    renewed = await bus.renew_lock(a)
    assert renewed.locked_until == clock.now() + timedelta(seconds=30) and renewed.lock_token == a.lock_token
    await clock.advance(20)
    for settle in (bus.complete(b), bus.abandon(b), bus.dead_letter(b, reason="x"), bus.renew_lock(b)):
        with pytest.raises(LockLostError):
            await settle
    await bus.complete(renewed)
    forged = BusMessage(**{**{f: getattr(a, f) for f in a.__slots__}, "lock_token": "nope"})  # type: ignore[arg-type]
    with pytest.raises(LockLostError):
        await bus.complete(forged)


async def test_max_delivery_count_on_abandon_dead_letters_with_reason(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit", max_delivery_count=3)
    await bus.publish("orders", ev(1))
    for attempt in range(1, 4):
        [message] = await bus.receive("orders", "audit")
        assert message.delivery_count == attempt
        await bus.abandon(message, reason=f"ValueError: attempt {attempt}")
    assert await bus.receive("orders", "audit") == []
    [letter] = await bus.dead_letters("orders", "audit")
    assert (letter.reason, letter.description, letter.delivery_count) == (
        "MaxDeliveryCountExceeded", "ValueError: attempt 3", 3)
    assert (await bus.stats("orders", "audit"))["dead_lettered"] == 1


async def test_max_delivery_count_on_lock_expiry_dead_letters(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit", max_delivery_count=2, lock_duration=5)
    await bus.publish("orders", ev(1))
    await bus.publish("orders", ev(2))
    for _ in range(2):
        assert ids(await bus.receive("orders", "audit")) == ["e1"]
        await clock.advance(5)
    assert (await bus.stats("orders", "audit"))["dead_lettered"] == 1  # swept on read, not only on receive
    [letter] = await bus.dead_letters("orders", "audit")
    assert letter.event.id == "e1" and letter.reason == "MaxDeliveryCountExceeded"
    assert ids(await bus.receive("orders", "audit")) == ["e2"]


async def test_scheduled_message_appears_when_due(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev("later"), scheduled_time=clock.now() + timedelta(minutes=1))
    await bus.publish("orders", ev("now"))
    [now] = await bus.receive("orders", "audit", max_messages=10)
    assert now.event.id == "enow"
    await bus.complete(now)
    assert (await bus.stats("orders", "audit"))["scheduled"] == 1
    await clock.advance(59)
    assert await bus.receive("orders", "audit") == []
    await clock.advance(1)
    assert ids(await bus.receive("orders", "audit")) == ["elater"]


async def test_waiting_receive_wakes_on_publish_and_times_out(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    started = time.monotonic()
    waiting = asyncio.create_task(bus.receive("orders", "audit", max_wait=5))
    await asyncio.sleep(0.02)
    await bus.publish("orders", ev(1))
    assert ids(await waiting) == ["e1"]
    assert time.monotonic() - started < 1
    started = time.monotonic()
    assert await bus.receive("orders", "audit", max_wait=0.15) == []
    assert 0.15 <= time.monotonic() - started < 1


async def test_waiting_receive_polls_for_scheduled_messages(bus: SqliteEventBus, clock: ManualClock) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev(1), scheduled_time=clock.now() + timedelta(hours=1))
    waiting = asyncio.create_task(bus.receive("orders", "audit", max_wait=5))
    await asyncio.sleep(0.06)
    await clock.advance(3600)
    assert ids(await asyncio.wait_for(waiting, 1)) == ["e1"]


async def test_cancelled_receive_gives_its_messages_back(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit")
    await bus.publish("orders", ev(1))
    waiting = asyncio.create_task(bus.receive("orders", "audit"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    [message] = await bus.receive("orders", "audit")
    assert message.delivery_count == 1  # the cancelled attempt was never a delivery


async def test_conversation_in_publish_order_across_topics(bus: SqliteEventBus) -> None:
    await bus.publish("agent.messages", ev(1, correlationid="c"))
    await bus.publish("agent.events", ev(2, correlationid="other"))
    await bus.publish("agent.events", ev(3, correlationid="c"))
    await bus.publish("agent.events", ev(1, correlationid="c"))  # same event on a second topic: listed once
    await bus.publish("agent.messages", ev(4, correlationid="c"))
    assert [e.id for e in await bus.conversation("c")] == ["e1", "e3", "e4"]
    assert await bus.conversation("none") == []


async def test_recreating_a_subscription_updates_its_settings(bus: SqliteEventBus) -> None:
    await bus.create_subscription("orders", "audit", filter=SubscriptionFilter(event_types=("a",)))
    await bus.create_subscription("orders", "audit", filter=SubscriptionFilter(("b",)), max_delivery_count=1)
    await bus.publish("orders", ev(1, "a"))
    await bus.publish("orders", ev(2, "b"))
    [message] = await bus.receive("orders", "audit", max_messages=5)
    assert message.event.id == "e2"
    await bus.abandon(message)
    assert [d.event.id for d in await bus.dead_letters("orders", "audit")] == ["e2"]


async def test_unknown_subscription_and_bad_names(bus: SqliteEventBus) -> None:
    with pytest.raises(NotFoundError):
        await bus.receive("orders", "nobody")
    with pytest.raises(NotFoundError):
        await bus.dead_letters("orders", "nobody")
    for topic, name in (("bad topic", "ok"), ("orders", "bad name"), ("orders", "x" * 51)):
        with pytest.raises(ValueError):
            await bus.create_subscription(topic, name)
    with pytest.raises(ValueError):
        await bus.create_subscription("orders", "ok", max_delivery_count=0)


async def test_close_wakes_waiting_receivers(tmp_path: Path) -> None:
    bus = SqliteEventBus(tmp_path / "b.db")
    await bus.create_subscription("orders", "audit")
    waiting = asyncio.create_task(bus.receive("orders", "audit", max_wait=10))
    await asyncio.sleep(0.02)
    await bus.close()
    assert await asyncio.wait_for(waiting, 1) == []
    with pytest.raises(RuntimeError):
        await bus.publish("orders", ev(1))


async def test_everything_survives_close_and_reopen(tmp_path: Path, clock: ManualClock) -> None:
    bus = SqliteEventBus(tmp_path / "b.db", clock=clock)
    await bus.create_subscription("orders", "audit", max_delivery_count=5, lock_duration=10)
    for n in range(4):
        await bus.publish("orders", ev(n, correlationid="c"))
    await bus.publish("orders", ev("s"), scheduled_time=clock.now() + timedelta(seconds=100))
    _locked, done, dead = await bus.receive("orders", "audit", max_messages=3)
    await bus.complete(done)
    await bus.dead_letter(dead, reason="Poison")
    await bus.close()

    bus = SqliteEventBus(tmp_path / "b.db", clock=clock)
    assert await bus.stats("orders", "audit") == {"active": 1, "scheduled": 1, "locked": 1, "dead_lettered": 1}
    await bus.publish("orders", ev(0))  # still a duplicate after reopening
    [e3] = await bus.receive("orders", "audit", max_messages=5)
    assert e3.event.id == "e3"
    await bus.complete(e3)
    await clock.advance(100)
    again = await bus.receive("orders", "audit", max_messages=5)
    assert [(m.event.id, m.delivery_count) for m in again] == [("e0", 2), ("es", 1)]
    assert [d.reason for d in await bus.dead_letters("orders", "audit")] == ["Poison"]
    assert [e.id for e in await bus.conversation("c")] == ["e0", "e1", "e2", "e3"]
    await bus.close()


CONSUMER = r"""
import asyncio, sys
from services.messaging import SqliteEventBus

async def main(path):
    bus = SqliteEventBus(path)
    async def worker():
        while batch := await bus.receive("orders", "audit", max_messages=4):
            for message in batch:
                print("settling", message.event.id, flush=True)
                await bus.complete(message)
                print("done", message.event.id, flush=True)
    await asyncio.gather(*(worker() for _ in range(4)))

asyncio.run(main(sys.argv[1]))
"""


async def test_kill_9_while_settling_loses_and_repeats_nothing(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    bus = SqliteEventBus(path)
    await bus.create_subscription("orders", "audit", lock_duration=1)
    await asyncio.gather(*(bus.publish("orders", ev(n)) for n in range(3000)))
    await bus.close()

    child = await asyncio.create_subprocess_exec(sys.executable, "-c", CONSUMER, str(path),
                                                 stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    output = b""
    while output.count(b"done") < 300 and (line := await child.stdout.readline()):
        output += line
    child.kill()
    output += await child.stdout.read()
    # A line cut off by the kill has no newline yet; only whole lines count.
    lines = [line.split() for line in output.decode().split("\n")[:-1]]
    completed = [event_id for kind, event_id in lines if kind == "done"]
    settling = {event_id for kind, event_id in lines if kind == "settling"} - set(completed)
    await child.wait()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    later = ManualClock(datetime.now(UTC) + timedelta(minutes=1))  # every lock the child held has expired
    bus = SqliteEventBus(path, clock=later)
    remaining = await drain(bus, "orders", "audit")
    await bus.close()
    assert len(completed) >= 300 and remaining, "the kill should land mid-stream"
    assert not set(completed) & set(remaining), "an acknowledged completion came back"
    assert len(set(remaining)) == len(remaining)
    # Only a completion in flight at the kill may have committed unacknowledged; nothing else is missing.
    assert {f"e{n}" for n in range(3000)} - set(completed) - set(remaining) <= settling
