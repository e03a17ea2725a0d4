"""Two workers of one app over one database: addressing an agent by id reads its registry record once per
registry generation, and reading its context shows what was committed, whichever worker committed it."""

from __future__ import annotations

from pathlib import Path

import pytest

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.agent_types import AgentTypes
from aos_core.errors import NotFoundError
from aos_core.events import Event
from aos_core.ports import Document
from services.storage import SqliteStateStore


class CountingGets(SqliteStateStore):
    """The SQLite store, counting reads of agent records."""

    record_reads = 0

    async def get(self, key: str) -> Document | None:
        if key.startswith("registry/agents/"):
            self.record_reads += 1
        return await super().get(key)


async def _worker(tmp_path: Path, name: str) -> tuple[AgentOperatingSystem, CountingGets]:
    # Two workers of one app: each its own kernel and connection, one database between them.
    store = CountingGets(tmp_path / "state.db")
    aos = AgentOperatingSystem(AOSConfig(data_dir=tmp_path / name), store=store)
    await aos.initialize()
    return aos, store


async def test_a_known_agent_is_addressed_without_a_read_until_the_registry_moves(tmp_path: Path) -> None:
    aos, store = await _worker(tmp_path, "a")
    await aos.register_agent("tally", agent_id="t1")
    await aos.dispatcher.drop("t1")  # dormant: addressing it cannot ask the live agent
    store.record_reads = 0
    assert [await aos.agent_type("t1") for _ in range(5)] == ["tally"] * 5
    assert store.record_reads == 1
    await aos.register_agent("tally", agent_id="other")  # the registry generation moves on
    await aos.process_event(Event(type="count", subject="nobody"))  # routing catches up with it
    store.record_reads = 0
    assert await aos.agent_type("t1") == "tally"
    assert store.record_reads == 1
    await aos.shutdown()


async def test_an_agent_registered_by_another_worker_is_found_at_once(tmp_path: Path) -> None:
    first, _ = await _worker(tmp_path, "a")
    second, _ = await _worker(tmp_path, "b")
    with pytest.raises(NotFoundError):
        await second.agent_type("t2")  # not registered yet: nothing is remembered about it
    await first.register_agent("tally", agent_id="t2")
    assert (await second.send_message("t2", Event(type="count"))).status == "completed"
    assert await second.agent_type("t2") == "tally"
    await first.shutdown()
    await second.shutdown()


def test_types_hold_for_their_generation_and_the_oldest_go_first() -> None:
    types = AgentTypes(size=2)
    types.put("a", "tally", 7)
    types.put("b", "tally", 7)
    assert types.get("a", 7) == "tally"  # now the most recently used
    assert types.get("a", 8) is None  # routing moved on: read it again
    types.put("c", "tally", 7)
    assert types.get("b", 7) is None and types.get("a", 7) == "tally" and types.get("c", 7) == "tally"


async def test_a_context_read_shows_what_another_worker_committed_since(tmp_path: Path) -> None:
    first, _ = await _worker(tmp_path, "a")
    second, _ = await _worker(tmp_path, "b")
    await first.register_agent("tally", agent_id="t3")
    assert (await second.send_message("t3", Event(type="count"))).status == "completed"  # live on the second
    assert (await first.send_message("t3", Event(type="count"))).status == "completed"  # committed by the first
    for worker in (first, second):
        context = await worker.read_context("t3")
        assert context is not None and context["state"]["total"] == 2 and context["version"] == 2
    await first.shutdown()
    await second.shutdown()
