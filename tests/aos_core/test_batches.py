"""Batcher: one send at a time per key; what arrives meanwhile goes in the next send, each item answered once."""

from __future__ import annotations

import asyncio

import pytest

from aos_core.batches import Batcher


async def settle() -> None:
    """Let every task that can run, run (a caller's submit, then the sender task it starts)."""
    for _ in range(5):
        await asyncio.sleep(0)


class Sender:
    """Records each group it is given and holds the first send open until `release` is set."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, list[str]]] = []
        self.release = asyncio.Event()
        self.fail: set[str] = set()

    async def __call__(self, key: str, items: list[str]) -> list[str]:
        self.groups.append((key, items))
        await self.release.wait()
        if self.fail & set(items):
            raise RuntimeError(f"refused {sorted(self.fail & set(items))}")
        return [f"{key}:{item}" for item in items]


async def test_what_arrives_while_a_send_is_in_flight_goes_together_in_the_next() -> None:
    send = Sender()
    batcher: Batcher[str, str, str] = Batcher(send)
    first = asyncio.create_task(batcher.submit("a", ["1"]))
    await settle()
    later = [asyncio.create_task(batcher.submit("a", [str(n), f"{n}b"])) for n in range(2, 5)]
    other = asyncio.create_task(batcher.submit("b", ["x"]))  # another key does not wait for "a"
    await settle()
    assert send.groups == [("a", ["1"]), ("b", ["x"])]
    send.release.set()
    assert await first == ["a:1"]
    assert [await task for task in later] == [[f"a:{n}", f"a:{n}b"] for n in range(2, 5)]
    assert await other == ["b:x"]
    assert send.groups[2:] == [("a", ["2", "2b", "3", "3b", "4", "4b"])]
    assert not batcher.pending("a") and not batcher.pending("b")


async def test_an_item_already_on_its_way_is_joined_not_sent_again() -> None:
    send = Sender()
    batcher: Batcher[str, str, str] = Batcher(send, identity=lambda item: item)
    first = asyncio.create_task(batcher.submit("a", ["e1"]))
    await settle()
    again = asyncio.create_task(batcher.submit("a", ["e1", "e2"]))  # e1 in flight, e2 new
    queued_again = asyncio.create_task(batcher.submit("a", ["e2"]))  # e2 queued: joins it too
    await settle()
    send.release.set()
    assert (await first, await again, await queued_again) == (["a:e1"], ["a:e1", "a:e2"], ["a:e2"])
    assert send.groups == [("a", ["e1"]), ("a", ["e2"])]
    assert await batcher.submit("a", ["e1"]) == ["a:e1"]  # done: a later resend is sent again
    assert send.groups[-1] == ("a", ["e1"])


async def test_a_failed_send_fails_its_group_only_and_the_next_group_still_goes() -> None:
    send = Sender()
    send.fail = {"bad"}
    batcher: Batcher[str, str, str] = Batcher(send)
    failing = asyncio.create_task(batcher.submit("a", ["bad"]))
    await settle()
    fine = asyncio.create_task(batcher.submit("a", ["ok"]))
    await settle()
    send.release.set()
    with pytest.raises(RuntimeError, match="refused"):
        await failing
    assert await fine == ["a:ok"]


async def test_a_cancelled_caller_does_not_cancel_the_send_others_wait_for() -> None:
    send = Sender()
    batcher: Batcher[str, str, str] = Batcher(send)
    first = asyncio.create_task(batcher.submit("a", ["1"]))
    await settle()
    impatient = asyncio.create_task(batcher.submit("a", ["2"]))
    patient = asyncio.create_task(batcher.submit("a", ["3"]))
    await settle()
    impatient.cancel()
    send.release.set()
    assert await first == ["a:1"] and await patient == ["a:3"]
    assert send.groups == [("a", ["1"]), ("a", ["2", "3"])]  # the cancelled caller's item was still sent
