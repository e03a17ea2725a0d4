"""TableAgentIndex on Azurite: lookups by type, capability and state agree with the agent row, ETags win races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from aos_core.errors import ConflictError
from aos_core.ports import AgentIndex, AgentIndexEntry
from services.storage.connections import resolve_storage_connection
from services.storage.tables import TableAgentIndex
from tests.azurite import Azurite


@pytest.fixture
async def index(azurite: Azurite) -> AsyncIterator[TableAgentIndex]:
    connection = resolve_storage_connection("S", {"S": azurite.connection_string})
    idx = TableAgentIndex(connection, table=f"agents{uuid.uuid4().hex[:12]}")
    yield idx
    await idx.close()


def ids(entries: list[AgentIndexEntry]) -> list[str]:
    return [e.agent_id for e in entries]


async def test_lookups_follow_every_change(index: TableAgentIndex) -> None:
    assert isinstance(index, AgentIndex)
    etag = await index.put(AgentIndexEntry("cfo", "tally", "running", ("count", "finance/ledger")))
    await index.put(AgentIndexEntry("ceo", "strategy", "running", ("plan",)))
    await index.put(AgentIndexEntry("ops", "tally", "sleeping", ("count",)))
    got = await index.get("cfo")
    assert got is not None and got.etag == etag and got.capabilities == ("count", "finance/ledger")
    assert ids(await index.by_type("tally")) == ["cfo", "ops"]
    assert ids(await index.by_capability("count")) == ["cfo", "ops"]
    assert ids(await index.by_capability("finance/ledger")) == ["cfo"]  # a RowKey-unsafe value is escaped
    assert ids(await index.by_capability("finance")) == []
    assert ids(await index.by_state("running")) == ["ceo", "cfo"]

    await index.put(AgentIndexEntry("cfo", "tally", "failed", ("count",)), if_match=etag)
    assert ids(await index.by_state("running")) == ["ceo"] and ids(await index.by_state("failed")) == ["cfo"]
    assert ids(await index.by_capability("finance/ledger")) == []
    assert await index.remove("ops") is True
    assert await index.remove("ops") is False
    assert ids(await index.by_type("tally")) == ["cfo"] and ids(await index.by_capability("count")) == ["cfo"]


async def test_stale_etag_and_create_only_conflict_and_change_nothing(index: TableAgentIndex) -> None:
    first = await index.put(AgentIndexEntry("a1", "tally", "running"), if_none_match=True)
    with pytest.raises(ConflictError):
        await index.put(AgentIndexEntry("a1", "tally", "sleeping"), if_none_match=True)
    await index.put(AgentIndexEntry("a1", "tally", "sleeping"), if_match=first)
    with pytest.raises(ConflictError):
        await index.put(AgentIndexEntry("a1", "other", "failed"), if_match=first)
    with pytest.raises(ConflictError):
        await index.remove("a1", if_match=first)
    got = await index.get("a1")
    assert got is not None and (got.agent_type, got.state) == ("tally", "sleeping")
    assert ids(await index.by_state("failed")) == [] and ids(await index.by_type("other")) == []


async def test_concurrent_state_changes_leave_one_consistent_state(index: TableAgentIndex) -> None:
    await index.put(AgentIndexEntry("hot", "tally", "s0"))
    conflicts = 0

    async def move(n: int) -> None:
        nonlocal conflicts
        while True:
            current = await index.get("hot")
            assert current is not None
            try:
                await index.put(AgentIndexEntry("hot", "tally", f"s{n + 1}"), if_match=current.etag)
                return
            except ConflictError:
                conflicts += 1

    await asyncio.gather(*(move(n) for n in range(10)))
    final = await index.get("hot")
    assert final is not None
    states = {f"s{n}": ids(await index.by_state(f"s{n}")) for n in range(11)}
    assert {s: v for s, v in states.items() if v} == {final.state: ["hot"]}  # exactly one lookup row survives
    assert conflicts > 0


@pytest.mark.parametrize("entry", [
    AgentIndexEntry("Bad Id", "tally", "running"),
    AgentIndexEntry("ok", "Bad Type", "running"),
    AgentIndexEntry("ok", "tally", ""),
    AgentIndexEntry("ok", "tally", "running", ("",)),
])
async def test_bad_entries_are_refused_before_writing(index: TableAgentIndex, entry: AgentIndexEntry) -> None:
    with pytest.raises(ValueError):
        await index.put(entry)
    assert await index.get("ok") is None
