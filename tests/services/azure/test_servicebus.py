"""Service Bus publishing: the mapping with the real ServiceBusMessage type, batching and retries with the SDK's
own batch type, and a real client against an unreachable endpoint. No namespace can run here, so the sender
link (the network boundary) is a stand-in that hands out real `ServiceBusMessageBatch` objects."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessagingEntityNotFoundError, ServiceBusConnectionError

from aos_core.config import AOSConfig
from aos_core.errors import ConfigError
from aos_core.events import Event
from aos_core.testing import ManualClock
from services.messaging.cloudevents_amqp import STRUCTURED_CONTENT_TYPE, event_from_message
from services.messaging.servicebus import (
    BusUnavailableError,
    ServiceBusEventBus,
    ServiceBusSender,
    to_message,
)
from services.storage.connections import resolve_servicebus_connection
from tests.support.servicebus import StandInClient, StandInLink

TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
CONN = "Endpoint=sb://aos-test.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def order(n: int, **fields: Any) -> Event:
    return Event(id=f"evt-{n}", type="order.created", source="shop", subject=f"order-{n}", data={"n": n}, **fields)


def test_message_mapping_uses_the_real_sdk_type_and_round_trips() -> None:
    event = order(1, correlationid="conv-7", traceparent=TRACE)
    message = to_message(event, session_id="conv-7")
    assert isinstance(message, ServiceBusMessage)
    assert message.message_id == "evt-1"  # duplicate detection drops a re-publish of the same event
    assert message.correlation_id == "conv-7" and message.session_id == "conv-7"
    assert message.subject == "order.created" and message.content_type == STRUCTURED_CONTENT_TYPE
    props = message.application_properties
    assert props is not None
    assert props["cloudEvents_type"] == "order.created" and props["cloudEvents_id"] == "evt-1"
    assert props["cloudEvents_source"] == "shop" and props["cloudEvents_correlationid"] == "conv-7"
    assert props["traceparent"] == TRACE
    body = b"".join(message.body)
    assert json.loads(body)["data"] == {"n": 1}
    # what the Functions trigger does with it on the way back in
    back = event_from_message(body, message_id=message.message_id, content_type=message.content_type,
                              correlation_id=message.correlation_id, subject=message.subject,
                              application_properties=props)
    assert back == event


async def test_sender_batches_in_order_and_splits_when_full() -> None:
    link = StandInLink(max_batch_bytes=4096)
    client = StandInClient(link)
    sender = ServiceBusSender(client, clock=ManualClock())
    events = [order(n, correlationid="conv-1") for n in range(40)]
    batches = await sender.send("agent.events", events)
    assert batches == len(link.sent) > 1
    sent = [m for batch in link.sent for m in batch]
    assert [m.message_id for m in sent] == [e.id for e in events]
    assert all(m.session_id == "conv-1" for m in sent)  # one conversation stays on one session
    assert client.topics == ["agent.events"]  # one sender link per topic, reused
    await sender.send("agent.events", [order(99)])
    assert client.topics == ["agent.events"]
    await sender.close()
    assert link.closed


async def test_scheduled_publish_sets_the_enqueue_time() -> None:
    link = StandInLink()
    bus = ServiceBusEventBus(resolve_servicebus_connection("SB", {"SB": CONN}),
                             sender=ServiceBusSender(StandInClient(link), sessions=False))
    when = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    await bus.publish("agent.events", order(1), scheduled_time=when)
    (message,) = link.sent[0]
    assert message.scheduled_enqueue_time_utc == when and message.session_id is None


async def test_an_event_larger_than_a_message_is_a_value_error() -> None:
    sender = ServiceBusSender(StandInClient(StandInLink(max_batch_bytes=1024)))
    with pytest.raises(ValueError, match="evt-1 is larger"):
        await sender.send("agent.events", [order(1, correlationid=None).model_copy(update={"data": "x" * 5000})])


async def test_transient_errors_are_retried_with_backoff_on_the_clock() -> None:
    clock = ManualClock()
    link = StandInLink(failures=[ServiceBusConnectionError(message="socket"), ServiceBusConnectionError(message="x")])
    sender = ServiceBusSender(StandInClient(link), attempts=3, backoff=2.0, clock=clock)
    task = asyncio.ensure_future(sender.send("agent.events", [order(1)]))
    await clock.advance(1.9)
    assert not task.done() and link.sent == []
    await clock.advance(0.2)  # first retry after 2 s
    assert not task.done()
    await clock.advance(4.0)  # second after 4 more
    assert await task == 1 and len(link.sent) == 1


async def test_errors_after_the_last_attempt_are_clear() -> None:
    clock = ManualClock()
    link = StandInLink(failures=[ServiceBusConnectionError(message="refused")] * 2)
    sender = ServiceBusSender(StandInClient(link), attempts=2, backoff=1.0, clock=clock)
    task = asyncio.ensure_future(sender.send("agent.events", [order(1)]))
    await clock.advance(1.0)
    with pytest.raises(BusUnavailableError, match=r"servicebus\.windows\.net topic 'agent\.events'.*2 attempts"):
        await task
    missing = StandInLink(failures=[MessagingEntityNotFoundError(message="no such topic")])
    with pytest.raises(BusUnavailableError, match="MessagingEntityNotFoundError"):  # not retried
        await ServiceBusSender(StandInClient(missing), clock=clock).send("agent.events", [order(1)])


async def test_unreachable_namespace_with_the_real_client() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    conn = resolve_servicebus_connection("SB", {"SB": f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=k;"
                                                      "SharedAccessKey=v;UseDevelopmentEmulator=true"})
    client = conn.client(retry_total=0)
    try:
        bus = ServiceBusEventBus(conn, sender=ServiceBusSender(client, attempts=1))
        with pytest.raises(BusUnavailableError, match="unreachable"):
            await bus.publish("agent.events", order(1))
        await bus.close()
    finally:
        await client.close()


async def test_one_client_per_bus_closed_with_it_and_receive_side_is_the_trigger() -> None:
    conn = resolve_servicebus_connection("ServiceBusConnection", {"ServiceBusConnection": CONN})
    bus_a, bus_b = ServiceBusEventBus(conn), ServiceBusEventBus(conn)
    try:
        assert bus_a.sender._client is bus_a.sender._client  # every send of one bus (one kernel) shares it
        assert bus_a.sender._client is not bus_b.sender._client  # another kernel's bus has its own
        await bus_a.create_subscription("agent.events", "all")  # provisioned by infra: nothing to do
        with pytest.raises(NotImplementedError, match="Functions Service Bus trigger"):
            await bus_a.receive("agent.events", "all")
    finally:
        await bus_a.close()
        await bus_b.close()
    assert bus_a._client is None


async def test_build_event_bus_resolves_the_connection_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from aos_core.runtime import build_event_bus

    monkeypatch.setenv("AOS_MESSAGING__BACKEND", "servicebus")
    monkeypatch.delenv("ServiceBusConnection", raising=False)
    with pytest.raises(ConfigError, match="ServiceBusConnection"):
        await build_event_bus(AOSConfig())
    monkeypatch.setenv("ServiceBusConnection__fullyQualifiedNamespace", "aos-test.servicebus.windows.net")
    monkeypatch.setenv("ServiceBusConnection__credential", "managedidentity")
    bus = await build_event_bus(AOSConfig())
    assert isinstance(bus, ServiceBusEventBus) and bus.connection.namespace == "aos-test.servicebus.windows.net"
    assert bus.connection.identity is not None and bus.connection.identity.managed
