from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import StateStore
from services.context import ContextMCPServer, merge_patch
from services.storage import InMemoryStateStore, SqliteStateStore


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    s: StateStore = SqliteStateStore(tmp_path / "state.db") if request.param == "sqlite" else InMemoryStateStore()
    yield s
    await s.close()


async def test_state_survives_a_new_server(store: StateStore) -> None:
    server = ContextMCPServer("ceo", store)
    await server.initialize()
    assert server.state == {} and server.version == 0
    await server.save_state({"okrs": ["grow"]})
    again = ContextMCPServer("ceo", store)
    await again.initialize()
    assert again.state == {"okrs": ["grow"]} and again.version == 1


async def test_the_design_call_uses_the_default_store() -> None:
    server = ContextMCPServer("cfo")
    await server.initialize()
    await server.save_state({"budget": 10})
    other = ContextMCPServer("cfo")
    await other.initialize()
    assert other.state == {"budget": 10}


async def test_a_stale_writer_gets_a_conflict_and_changes_nothing(store: StateStore) -> None:
    first, second = ContextMCPServer("a1", store), ContextMCPServer("a1", store)
    await first.initialize()
    await second.initialize()
    await first.save_state({"n": 1})
    with pytest.raises(ConflictError):
        await second.save_state({"n": 99})
    check = ContextMCPServer("a1", store)
    await check.initialize()
    assert check.state == {"n": 1}
    await second.reload()
    await second.save_state({"n": 2})
    assert second.version == 2


async def test_expected_version_is_checked(store: StateStore) -> None:
    server = ContextMCPServer("a1", store)
    await server.initialize()
    await server.replace({"x": 1}, expected_version=0)
    with pytest.raises(ConflictError, match="expected version 0"):
        await server.replace({"x": 2}, expected_version=0)
    assert server.state == {"x": 1}


async def test_applied_event_ids_are_kept_with_the_state(store: StateStore) -> None:
    server = ContextMCPServer("a1", store, dedupe_window=3)
    await server.initialize()
    for n in range(5):
        await server.save_state({"n": n}, applied_event_id=f"e{n}")
    reloaded = ContextMCPServer("a1", store, dedupe_window=3)
    await reloaded.initialize()
    assert [reloaded.has_applied(f"e{n}") for n in range(5)] == [False, False, True, True, True]


async def test_merge_patch_history_and_memory(store: StateStore) -> None:
    server = ContextMCPServer("a1", store, history_limit=2)
    await server.initialize()
    await server.save_state({"a": 1, "b": {"c": 2, "d": 3}})
    await server.patch({"b": {"c": None, "e": 4}, "f": [1]})
    assert server.state == {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
    await server.patch({"a": 5})
    history = await server.history()
    assert [h["version"] for h in history] == [2, 3]  # bounded to the last two
    assert (await server.get_version(2))["state"]["f"] == [1]
    with pytest.raises(NotFoundError):
        await server.get_version(1)
    assert await server.append_memory({"fact": "Q3 revenue up"}) == 1
    assert await server.append_memory("plain note") == 2
    assert [m["entry"] for m in await server.memory()] == [{"fact": "Q3 revenue up"}, "plain note"]
    assert [m["seq"] for m in await server.memory(after=1)] == [2]


async def test_delete_removes_everything_of_one_agent_only(store: StateStore) -> None:
    a, b = ContextMCPServer("a1", store), ContextMCPServer("a10", store)
    for server in (a, b):
        await server.initialize()
        await server.save_state({"x": 1})
        await server.append_memory("m")
    await a.delete()
    assert a.version == 0 and a.state == {}
    assert await store.list("context/a1/") == []
    assert await store.get("context/a10") is not None


def test_merge_patch_follows_rfc7386() -> None:
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"b": "c"}) == {"a": "b", "b": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": ["b"]}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "c"}, {"a": ["b"]}) == {"a": ["b"]}
    assert merge_patch({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert merge_patch(["a", "b"], ["c", "d"]) == ["c", "d"]
    assert merge_patch({"a": "foo"}, "bar") == "bar"
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}


async def test_non_object_state_is_rejected(store: StateStore) -> None:
    server = ContextMCPServer("a1", store)
    await server.initialize()
    with pytest.raises(ValueError):
        await server.save_state([1, 2])  # type: ignore[arg-type]
    assert server.version == 0
