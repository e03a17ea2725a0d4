"""The publish side of the EventBus port, one contract for both backends: SqliteEventBus (the embedded bus) and
ServiceBusEventBus (Azure). Whatever a subscriber receives is what was published, in order, each once.

No Service Bus namespace can run here, so for Azure the subscriber's view is what the SDK's sender was given
(real `ServiceBusMessage`s from `tests/support/servicebus.py`), decoded the way the Functions Service Bus
trigger decodes a message (`event_from_message`). The receive side (locks, settling, dead letters) is the
Functions trigger on Azure, so its contract runs on SQLite only (test_sqlite_bus.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aos_core.events import Event
from aos_core.ports import EventBus

TOPIC = "agent.events"


@dataclass
class Subscriber:
    bus: Any
    received: Callable[[], Awaitable[list[Event]]]  # what a subscription of TOPIC got since the last call


@pytest.fixture(params=["sqlite", "servicebus"])
async def subscriber(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subscriber]:
    if request.param == "sqlite":
        from services.messaging import SqliteEventBus

        bus = SqliteEventBus(tmp_path / "bus.db")
        await bus.create_subscription(TOPIC, "contract")

        async def received() -> list[Event]:
            out: list[Event] = []
            while batch := await bus.receive(TOPIC, "contract", max_messages=100):
                for message in batch:
                    out.append(message.event)
                    await bus.complete(message)
            return out

        yield Subscriber(bus, received)
        await bus.close()
        return
    from services.messaging.cloudevents_amqp import event_from_message
    from services.messaging.servicebus import ServiceBusEventBus, ServiceBusSender
    from services.storage.connections import resolve_servicebus_connection
    from tests.support.servicebus import StandInClient, StandInLink

    link = StandInLink(max_batch_bytes=256 * 1024)
    connection = resolve_servicebus_connection("SB", {"SB": "Endpoint=sb://aos-test.servicebus.windows.net/;"
                                                            "SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"})
    bus = ServiceBusEventBus(connection, sender=ServiceBusSender(StandInClient(link)))

    async def sent() -> list[Event]:
        messages = [m for batch in link.sent for m in batch]
        link.sent.clear()
        return [event_from_message(b"".join(m.body), message_id=m.message_id, content_type=m.content_type,
                                   correlation_id=m.correlation_id, subject=m.subject,
                                   application_properties=m.application_properties) for m in messages]

    yield Subscriber(bus, sent)
    await bus.close()


def order(n: int, **fields: Any) -> Event:
    return Event(id=f"evt-{n}", type="order.created", source="shop", subject=f"order-{n}",
                 data={"n": n, "lines": [{"sku": "a", "qty": n}], "note": "é ✓"}, **fields)


async def test_implements_the_port(subscriber: Subscriber) -> None:
    assert isinstance(subscriber.bus, EventBus)


async def test_what_is_published_is_received_unchanged_and_in_order(subscriber: Subscriber) -> None:
    events = [order(n, correlationid="conv-1") for n in range(5)]
    for event in events:
        await subscriber.bus.publish(TOPIC, event)
    assert await subscriber.received() == events


@pytest.mark.parametrize("topic", ["", "has space", "-leading", "x" * 300])
async def test_a_bad_topic_name_is_a_value_error_and_sends_nothing(subscriber: Subscriber, topic: str) -> None:
    with pytest.raises(ValueError):
        await subscriber.bus.publish(topic, order(1))
    assert await subscriber.received() == []
