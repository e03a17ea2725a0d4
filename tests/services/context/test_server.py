from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aos_core.errors import ConflictError, NotFoundError, StorageUnavailableError
from aos_core.ports import Document, StateStore
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


class CountingStore(InMemoryStateStore):
    """The in-memory store, noting the size of each document written (what a commit costs)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[str, int]] = []

    async def put(self, key: str, value: object, **kwargs: object) -> str:  # type: ignore[override]
        self.writes.append((key, len(json.dumps(value))))
        return await super().put(key, value, **kwargs)  # type: ignore[arg-type]


async def test_a_commit_writes_the_change_not_the_state() -> None:
    store = CountingStore()
    server = ContextMCPServer("big", store)
    await server.initialize()
    server.state["notes"] = {f"n{i}": "x" * 100 for i in range(10_000)}  # ~1 MB
    await server.save_state()
    store.writes.clear()
    for n in range(200):
        server.state["count"] = n
        await server.save_state(applied_event_id=f"e{n}")
    heads = [size for key, size in store.writes if key == "context/big"]
    assert len(heads) == 200 and max(heads) < 64_000  # one head write per commit, never the notes
    # the heads' logs and a snapshot now and then: 200 commits write a few states' worth, not 200 (or 400)
    assert sum(size for _, size in store.writes) < 4 * 1_100_000
    again = ContextMCPServer("big", store)
    await again.initialize()
    assert again.state["count"] == 199 and len(again.state["notes"]) == 10_000 and again.has_applied("e199")


async def test_history_replays_each_kept_version_across_snapshots(store: StateStore) -> None:
    server = ContextMCPServer("h", store, history_limit=30)
    await server.initialize()
    seen: dict[int, dict[str, object]] = {}
    for n in range(1, 121):
        server.state.setdefault("log", {})[f"k{n % 7}"] = "v" * (n * 10)  # grows: several snapshots get written
        server.state["n"] = n if n % 5 else None
        version = await server.save_state(applied_event_id=f"e{n}")
        seen[version] = json.loads(json.dumps(server.state))
        fresh = ContextMCPServer("h", store, history_limit=30)
        await fresh.initialize()
        assert fresh.state == server.state and fresh.version == version
    snapshots = await store.list("context/h/snapshots/")
    assert 1 < len(snapshots) <= 10  # written now and then, the ones no kept version needs deleted
    history = await server.history()
    assert [h["version"] for h in history] == list(range(91, 121))
    assert all(h["state"] == seen[h["version"]] and h["event_id"] == f"e{h['version']}" for h in history)
    assert (await server.get_version(95))["state"] == seen[95]
    with pytest.raises(NotFoundError):
        await server.get_version(90)


async def test_a_writer_that_lost_the_race_leaves_no_snapshot_behind(store: StateStore) -> None:
    first, second = ContextMCPServer("r", store), ContextMCPServer("r", store)
    await first.initialize()
    await second.initialize()
    await first.save_state({"n": 1})
    second.state["blob"] = "x" * 20_000  # a delta past the log limit: the commit snapshots first
    with pytest.raises(ConflictError):
        await second.save_state()
    assert await store.list("context/r/snapshots/") == []  # the first writer's log is small: none of its own


async def test_a_context_of_the_earlier_layout_is_read_and_moved_on(store: StateStore) -> None:
    await store.put("context/old", {"agent_id": "old", "version": 3, "state": {"n": 3}, "applied": ["e3"],
                                    "memory_count": 0, "updated_at": "2026-01-01T00:00:00+00:00"})
    await store.put("context/old/history/000000000003", {"version": 3, "state": {"n": 3}, "at": "t", "event_id": "e3"})
    server = ContextMCPServer("old", store)
    await server.initialize()
    assert server.state == {"n": 3} and server.has_applied("e3")
    server.state["n"] = 4
    assert await server.save_state(applied_event_id="e4") == 4
    again = ContextMCPServer("old", store)
    await again.initialize()
    assert again.state == {"n": 4} and again.has_applied("e3") and again.has_applied("e4")
    assert (await again.get_version(3))["state"] == {"n": 3}
    assert (await again.get_version(4))["state"] == {"n": 4}


async def test_a_context_of_a_newer_layout_is_refused_and_left_as_it_is(store: StateStore) -> None:
    # A newer release wrote it: read as an older layout its state would look empty, and a commit would bury it.
    newer = {"agent_id": "new", "layout": 99, "version": 7, "applied": [], "bases": [], "log": ["?"]}
    await store.put("context/new", newer)
    server = ContextMCPServer("new", store)
    with pytest.raises(StorageUnavailableError, match="layout 99"):
        await server.initialize()
    stored = await store.get("context/new")
    assert stored is not None and stored.value == newer


async def test_a_reader_racing_commits_that_drop_its_snapshot_reads_the_new_head() -> None:
    class Racing(InMemoryStateStore):
        """Runs `race` in the middle of the reader's first snapshot read: between its head and its snapshot."""

        race: Any = None

        async def get(self, key: str) -> Document | None:
            if self.race is not None and "/snapshots/" in key:
                race, self.race = self.race, None
                await race()
            return await super().get(key)

    store = Racing()
    writer = ContextMCPServer("x", store, history_limit=1)
    await writer.initialize()
    writer.state["blob"] = "a" * 5000  # past the log limit: each of these commits writes a snapshot
    await writer.save_state()

    async def two_more_snapshots() -> None:
        for char in "bc":
            writer.state["blob"] = char * 5000
            await writer.save_state()

    store.race = two_more_snapshots
    reader = ContextMCPServer("x", store, history_limit=1)
    await reader.initialize()
    assert reader.version == 3 and reader.state["blob"] == "c" * 5000
    assert len(await store.list("context/x/snapshots/")) == 1
