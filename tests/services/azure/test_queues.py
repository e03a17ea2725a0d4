"""StorageWorkQueue on Azurite: visibility, dequeue count, poison queue, settled-twice errors (no sleeping)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from aos_core.errors import LockLostError
from services.storage.connections import resolve_storage_connection
from services.storage.queues import StorageWorkQueue
from tests.azurite import Azurite


@pytest.fixture
async def queue(azurite: Azurite) -> AsyncIterator[StorageWorkQueue]:
    connection = resolve_storage_connection("S", {"S": azurite.connection_string})
    q = StorageWorkQueue(f"work-{uuid.uuid4().hex[:12]}", connection, visibility_timeout=60, max_dequeue_count=2)
    yield q
    await q.close()


async def test_receive_hides_and_complete_deletes(queue: StorageWorkQueue) -> None:
    await queue.send({"job": 1})
    await queue.send({"job": 2})
    first = await queue.receive(max_messages=1)
    assert [item.body for item in first] == [{"job": 1}] and first[0].dequeue_count == 1
    rest = await queue.receive(max_messages=32)
    assert [item.body for item in rest] == [{"job": 2}]  # job 1 is invisible while it is being worked on
    assert await queue.receive() == []
    await queue.complete(first[0])
    with pytest.raises(LockLostError):
        await queue.complete(first[0])


async def test_abandon_redelivers_with_a_higher_count_then_poison(queue: StorageWorkQueue) -> None:
    await queue.send({"job": "flaky"})
    (item,) = await queue.receive()
    await queue.abandon(item)
    (again,) = await queue.receive()
    assert again.id == item.id and again.dequeue_count == 2
    with pytest.raises(LockLostError):  # the old pop receipt no longer settles it
        await queue.complete(item)
    await queue.abandon(again)
    assert await queue.receive() == []  # third dequeue > max_dequeue_count: moved, not handed out
    assert await queue.poison_messages() == [{"job": "flaky"}]


async def test_dead_letter_keeps_the_reason_and_delay_hides(queue: StorageWorkQueue) -> None:
    await queue.send("plain")
    (item,) = await queue.receive()
    await queue.dead_letter(item, reason="bad input")
    assert await queue.poison_messages() == [{"body": "plain", "reason": "bad input", "dequeue_count": 1}]
    await queue.send({"later": True}, delay=3600)
    assert await queue.receive() == []


async def test_extend_and_bad_arguments(queue: StorageWorkQueue) -> None:
    await queue.send([1, 2])
    (item,) = await queue.receive(visibility_timeout=30)
    longer = await queue.extend(item, 600)
    assert longer.pop_receipt != item.pop_receipt
    assert longer.visible_again is not None and item.visible_again is not None
    assert longer.visible_again > item.visible_again
    await queue.complete(longer)
    with pytest.raises(ValueError):
        await queue.send(float("nan"))
    with pytest.raises(ValueError):
        await queue.receive(max_messages=33)
    with pytest.raises(ValueError):
        StorageWorkQueue("Bad_Name", service_client=object())
    with pytest.raises(ValueError):
        await queue.abandon(longer, delay=-1)
