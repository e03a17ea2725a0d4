"""MessageBus over a real SqliteEventBus: pumps, retries, dead letters, direct agent messages, clean close."""

from __future__ import annotations

import asyncio
import inspect
import re
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from aos_core.events import AgentId, Event
from aos_core.ports import SubscriptionFilter
from services.messaging import MessageBus, SqliteEventBus, Subscription
from services.messaging.message_bus import subscription_name


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SqliteEventBus]:
    bus = SqliteEventBus(tmp_path / "bus.db")
    yield bus
    await bus.close()


@pytest.fixture
async def message_bus(bus: SqliteEventBus) -> AsyncIterator[MessageBus]:
    message_bus = MessageBus(bus)
    yield message_bus
    await message_bus.close()


async def eventually(check: Callable[[], Any]) -> Any:
    """The first truthy result of `check()` (awaited if async), polled for up to 3 s."""
    for _ in range(300):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 3 s")


async def test_publish_subscribe_end_to_end(message_bus: MessageBus) -> None:
    received: list[Event] = []

    async def my_handler(event: Event) -> None:
        received.append(event)

    sub = await message_bus.subscribe(topic="agent.events", handler=my_handler, max_wait=0.2)
    assert isinstance(sub, Subscription) and sub.running
    sent = [
        await message_bus.publish(topic="agent.events", message={"kind": "hello"}),
        await message_bus.publish(topic="agent.events", message={"type": "order.created", "n": 1}),
        await message_bus.publish("agent.events", "plain text", event_type="note.added", subject="ceo"),
        await message_bus.publish("agent.events", Event(id="given", type="x.y", data=[1, 2])),
    ]
    await eventually(lambda: len(received) == 4)
    assert [e.id for e in received] == [e.id for e in sent]
    assert [e.type for e in received] == ["aos.message", "order.created", "note.added", "x.y"]
    assert received[0].data == {"kind": "hello"} and received[0].source == "aos"
    assert received[2].subject == "ceo" and received[3].data == [1, 2]
    assert await message_bus.bus.stats("agent.events", sub.name) == {
        "active": 0, "scheduled": 0, "locked": 0, "dead_lettered": 0}


async def test_publish_applies_overrides_to_a_given_event(message_bus: MessageBus) -> None:
    event = await message_bus.publish("t", Event(id="e1", type="a"), subject="cfo", correlation_id="c")
    assert (event.id, event.type, event.subject, event.correlationid) == ("e1", "a", "cfo", "c")
    assert await message_bus.conversation("c") == [event]


async def test_failing_handler_is_retried_then_dead_lettered(message_bus: MessageBus) -> None:
    attempts: list[int] = []

    async def flaky(event: Event) -> None:
        attempts.append(len(attempts) + 1)
        raise ValueError(f"cannot handle {event.data['n']}")

    sub = await message_bus.subscribe("orders", flaky, max_delivery_count=3, max_wait=0.2)
    await message_bus.publish("orders", {"n": 7})
    [letter] = await eventually(lambda: message_bus.bus.dead_letters("orders", sub.name))
    assert attempts == [1, 2, 3]
    assert letter.reason == "MaxDeliveryCountExceeded"
    assert letter.description == "ValueError: cannot handle 7"
    assert letter.delivery_count == 3


async def test_handler_that_recovers_is_completed_once(message_bus: MessageBus) -> None:
    seen: list[int] = []

    async def second_time_lucky(event: Event) -> None:
        seen.append(1)
        if len(seen) == 1:
            raise RuntimeError("transient")

    sub = await message_bus.subscribe("orders", second_time_lucky, max_wait=0.2)
    await message_bus.publish("orders", {"n": 1})
    await eventually(lambda: len(seen) == 2)
    await sub.close()
    assert await message_bus.bus.dead_letters("orders", sub.name) == []
    assert (await message_bus.bus.stats("orders", sub.name))["active"] == 0


async def test_sync_handlers_run_off_the_event_loop(message_bus: MessageBus) -> None:
    threads: list[int] = []

    def sync_handler(event: Event) -> None:
        threads.append(threading.get_ident())

    await message_bus.subscribe("orders", sync_handler, max_wait=0.2)
    await message_bus.publish("orders", {"n": 1})
    await eventually(lambda: threads)
    assert threads != [threading.get_ident()]


async def test_concurrency_runs_handlers_in_parallel(message_bus: MessageBus) -> None:
    running, peak, done = 0, 0, 0

    async def slow(event: Event) -> None:
        nonlocal running, peak, done
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        done += 1

    await message_bus.subscribe("orders", slow, concurrency=4, max_wait=0.2)
    await asyncio.gather(*(message_bus.publish("orders", {"n": n}) for n in range(8)))
    await eventually(lambda: done == 8)
    assert peak == 4


async def test_send_agent_message_addresses_and_correlates(message_bus: MessageBus) -> None:
    inbox: dict[str, list[Event]] = {"cfo": [], "cto": []}
    for agent in inbox:
        await message_bus.subscribe_agent(agent, inbox[agent].append, max_wait=0.2)

    ask = await message_bus.send_agent_message("ceo", "cfo", {"ask": "budget"})
    assert (ask.subject, ask.source, ask.type) == ("cfo", "agents/ceo", "aos.message")
    assert ask.correlationid and ask.correlationid != ask.id
    reply = await message_bus.send_agent_message(AgentId("cfo", "cfo"), "ceo", {"budget": 10},
                                                 correlation_id=ask.correlationid, message_type="budget.reply")
    await eventually(lambda: inbox["cfo"])
    assert [e.id for e in inbox["cfo"]] == [ask.id] and inbox["cto"] == []
    assert [e.id for e in await message_bus.conversation(ask.correlationid)] == [ask.id, reply.id]
    other = await message_bus.send_agent_message("ceo", "cfo", "hi")
    assert other.correlationid != ask.correlationid
    for bad in ("CEO", "", "a b"):
        with pytest.raises(ValueError):
            await message_bus.send_agent_message(bad, "cfo", {})
        with pytest.raises(ValueError):
            await message_bus.send_agent_message("ceo", bad, {})


async def test_close_stops_pumps_and_leaves_the_bus_open(bus: SqliteEventBus) -> None:
    message_bus = MessageBus(bus)
    handled: list[str] = []
    sub = await message_bus.subscribe("orders", lambda e: handled.append(e.id), max_wait=5)
    await asyncio.sleep(0.02)  # the pump is now waiting in receive
    await asyncio.wait_for(message_bus.close(), 1)  # does not wait out max_wait
    assert not sub.running
    await bus.publish("orders", Event(id="after", type="t"))
    await asyncio.sleep(0.1)
    assert handled == []
    assert await bus.stats("orders", sub.name) == {"active": 1, "scheduled": 0, "locked": 0, "dead_lettered": 0}
    with pytest.raises(RuntimeError):
        await message_bus.subscribe("orders", print)


async def test_close_lets_a_running_handler_finish(bus: SqliteEventBus) -> None:
    message_bus = MessageBus(bus)
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(event: Event) -> None:
        started.set()
        await release.wait()

    sub = await message_bus.subscribe("orders", slow, max_wait=0.2)
    await message_bus.publish("orders", {"n": 1})
    await asyncio.wait_for(started.wait(), 2)
    closing = asyncio.create_task(message_bus.close())
    await asyncio.sleep(0.05)
    assert not closing.done()
    release.set()
    await asyncio.wait_for(closing, 2)
    assert (await bus.stats("orders", sub.name))["locked"] == 0
    assert await bus.receive("orders", sub.name) == []  # completed, not abandoned


async def test_a_message_bus_that_opened_its_bus_closes_it(tmp_path: Path) -> None:
    message_bus = MessageBus.open(tmp_path / "own.db")
    await message_bus.subscribe("orders", print, subscription="printer", filter=SubscriptionFilter(("none",)))
    await message_bus.close()
    with pytest.raises(RuntimeError):
        await message_bus.bus.publish("orders", Event(type="t"))


def test_subscription_names_are_stable_and_valid() -> None:
    def handler(event: Event) -> None: ...

    async def other(event: Event) -> None: ...

    name = subscription_name(handler)
    assert name == subscription_name(handler) != subscription_name(other)
    assert name.startswith("handler-")
    for fn in (handler, other, lambda e: None, print, str.upper):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.~-]{0,49}", subscription_name(fn))
