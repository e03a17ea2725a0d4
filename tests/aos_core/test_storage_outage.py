"""Storage that cannot be reached is nobody's failure: the event waits, pending, and is applied exactly once when
storage answers again. Not failed, not dead-lettered, and the agent is not put in recovery for it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import StorageUnavailableError
from aos_core.event_records import DEADLETTERS
from aos_core.events import Event
from aos_core.lifecycle import AgentState
from services.storage import SqliteStateStore


class OutageStore(SqliteStateStore):
    """SQLite, with writes of the keys starting with `failing` refused as a full disk would, `outage` times."""

    outage = 0
    failing = "context/"

    async def put(self, key: str, value: Any, **options: Any) -> str:
        self._refuse_during_outage([key])
        return await super().put(key, value, **options)

    async def create_many(self, items: Sequence[tuple[str, Any]]) -> list[str | None]:
        self._refuse_during_outage([key for key, _ in items])
        return await super().create_many(items)

    def _refuse_during_outage(self, keys: list[str]) -> None:
        if self.outage and any(key.startswith(self.failing) for key in keys):
            self.outage -= 1
            raise StorageUnavailableError("storage unavailable: database or disk is full (simulated)")


@pytest.fixture
async def kernel(tmp_path: Path) -> Any:
    store = OutageStore(tmp_path / "state.db")
    aos = AgentOperatingSystem(AOSConfig(data_dir=tmp_path, lifecycle={"backoff_initial": 0.01, "backoff_max": 0.02}),
                               store=store)
    await aos.initialize()
    await aos.register_agent("tally", agent_id="t1")
    assert (await aos.send_message("t1", Event(type="hit"))).status == "completed"
    yield aos, store
    await aos.shutdown()


async def _total(aos: AgentOperatingSystem) -> int:
    return int(((await aos.read_context("t1")) or {})["state"]["total"])


async def _healthy(aos: AgentOperatingSystem) -> None:
    lifecycle = aos.lifecycle.get("t1")
    assert lifecycle is None or (lifecycle.state != AgentState.FAILED and lifecycle.restarts == 0)
    assert await aos.store.list(DEADLETTERS) == []


async def test_an_outage_longer_than_the_attempts_leaves_the_event_pending_until_a_resend(kernel: Any) -> None:
    aos, store = kernel
    store.outage = 10  # more than dispatch.max_attempts: once, this failed the event for good
    with pytest.raises(StorageUnavailableError):
        await aos.send_message("t1", Event(id="victim", type="hit"))
    record = await aos.records.get("victim")
    assert record is not None and record.status == "pending"
    await _healthy(aos)
    store.outage = 0
    assert (await aos.send_message("t1", Event(id="victim", type="hit"))).status == "completed"
    assert (await aos.send_message("t1", Event(id="victim", type="hit"))).status == "completed"  # answered
    assert await _total(aos) == 2
    await _healthy(aos)


async def test_a_result_lost_to_an_outage_after_the_commit_is_not_applied_again(kernel: Any) -> None:
    aos, store = kernel
    store.failing, store.outage = "events/victim/results/", 1
    with pytest.raises(StorageUnavailableError):
        await aos.send_message("t1", Event(id="victim", type="hit"))
    assert (await aos.send_message("t1", Event(id="victim", type="hit"))).status == "completed"
    assert await _total(aos) == 2
    await _healthy(aos)


async def test_a_hand_over_whose_commit_meets_an_outage_is_applied_once_when_delivered_again(kernel: Any) -> None:
    aos, store = kernel
    events = [Event(id=f"b{n}", type="hit") for n in range(5)]
    for event in events:  # accepted elsewhere, then handed to the agent's entity together
        await aos.records.accept(event, ["t1"], kind="message")
    store.outage = 10
    with pytest.raises(StorageUnavailableError):
        await aos.apply_deliveries("t1", events)
    store.outage = 0
    results = await aos.apply_deliveries("t1", events)  # the entity runs the operation again
    assert [r.status for r in results] == ["completed"] * 5
    assert await _total(aos) == 6
    await _healthy(aos)
