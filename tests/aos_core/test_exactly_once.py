"""Exactly once for one agent under any interleaving of deliver, redeliver, batch, crash, outage and evict
(hypothesis).

A "crash" abandons the kernel and starts a new one on the same files, optionally right after the agent's
commit and before its result is stored, the one point where the two are not one write. A "batch" hands the
agent several events at once, as an entity operation carrying many events does (committed together, up to the
dedupe window). An "outage" refuses the next few context commits as unreachable storage does; what meets it stays
pending. Whatever happens, once every id has been resent, the agent has applied each distinct id exactly once."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aos_core import AgentOperatingSystem, AOSConfig
from aos_core.errors import StorageUnavailableError
from aos_core.events import Event
from aos_core.ports import JSON
from aos_core.testing import ManualClock
from services.storage import SqliteStateStore


class CrashBetweenCommitAndResult(BaseException):
    """The process dies here: like SystemExit, no `except Exception` in the kernel treats it as a failure."""


class FaultyStore:
    """The SQLite store, except that the next result write for the agent can be made to fail (a crash there)."""

    def __init__(self, store: SqliteStateStore) -> None:
        self._store = store
        self.fail_next_result = False
        self.refused_commits = 0  # the next context commits refused, as by storage that cannot be reached

    async def put(self, key: str, value: JSON, *, if_match: str | None = None, if_none_match: bool = False) -> str:
        if self.refused_commits and key == "context/t1":
            self.refused_commits -= 1
            raise StorageUnavailableError("storage unavailable: the service could not be reached (simulated)")
        return await self._store.put(key, value, if_match=if_match, if_none_match=if_none_match)

    async def create_many(self, items: list[tuple[str, JSON]]) -> list[str | None]:  # how results are written
        if self.fail_next_result and any(key.startswith("events/") and key.endswith("/results/t1") for key, _ in items):
            self.fail_next_result = False
            raise CrashBetweenCommitAndResult(items[0][0])  # before any of the group's results is written
        return await self._store.create_many(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


OPS = st.lists(st.one_of(
    st.tuples(st.just("deliver"), st.integers(0, 7)),
    st.tuples(st.just("redeliver"), st.integers(0, 7)),
    st.tuples(st.just("crash"), st.booleans()),
    st.tuples(st.just("outage"), st.integers(1, 4)),
    st.tuples(st.just("evict"), st.just(0)),
    st.tuples(st.just("batch"), st.lists(st.integers(0, 7), min_size=1, max_size=6)),
), min_size=1, max_size=25)


async def _kernel(folder: Path, store: FaultyStore, window: int) -> AgentOperatingSystem:
    # A tiny dedupe window: exactness must come from the durable results, not from recent ids.
    config = AOSConfig(data_dir=folder, governance={"audit_backend": "none"}, dispatch={"dedupe_window": window})
    aos = AgentOperatingSystem(config, store=store, clock=ManualClock())  # type: ignore[arg-type]
    await aos.initialize()
    if await aos.registry.get("t1") is None:
        await aos.register_agent("tally", agent_id="t1")
    return aos


async def _play(folder: Path, ops: list[tuple[str, Any]], window: int) -> tuple[int, set[int]]:
    sqlite = SqliteStateStore(folder / "state.db")
    store = FaultyStore(sqlite)
    aos = await _kernel(folder, store, window)
    seen: set[int] = set()
    try:
        for op, arg in ops:
            if op == "redeliver" and arg not in seen:
                op = "deliver"  # an entity only ever gets events that were accepted first
            if op in ("deliver", "redeliver"):
                seen.add(arg)
                event = Event(id=f"e{arg}", type="hit")
                try:
                    if op == "deliver":
                        await aos.send_message("t1", event)
                    else:  # the same event signalled to the agent's mailbox again, as an entity may be
                        await aos.apply_delivery("t1", event)
                except CrashBetweenCommitAndResult:
                    await aos.shutdown()  # the process is gone; what was committed stays
                    aos = await _kernel(folder, store, window)
                except StorageUnavailableError:
                    pass  # pending: the resends below apply it
            elif op == "batch":
                events = [Event(id=f"e{n}", type="hit") for n in arg]
                for event in events:  # accepted (elsewhere) before any entity holds them
                    if int(event.id[1:]) not in seen:
                        await aos.records.accept(event, ["t1"], kind="message")
                        seen.add(int(event.id[1:]))
                try:
                    await aos.apply_deliveries("t1", events)
                except CrashBetweenCommitAndResult:
                    await aos.shutdown()
                    aos = await _kernel(folder, store, window)
                except StorageUnavailableError:
                    pass
            elif op == "outage":
                store.refused_commits = arg
            elif op == "crash":
                store.fail_next_result = arg
                if not arg:
                    await aos.shutdown()
                    aos = await _kernel(folder, store, window)
            else:
                await aos.dispatcher.drop("t1")
        store.fail_next_result, store.refused_commits = False, 0
        for n in sorted(seen):  # the client resends everything it is not sure about
            await aos.send_message("t1", Event(id=f"e{n}", type="hit"))
        context = await aos.read_context("t1") or {}
        return int(context.get("state", {}).get("total", 0)), seen
    finally:
        await aos.shutdown()
        await sqlite.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS, st.sampled_from([1, 4]))
# A crash between an event's commit and its result, then a hand-over with that event behind others: checked for
# results before the agent woke and settled it, it was applied again once the others pushed it out of the window.
@example([("crash", True), ("deliver", 0), ("batch", [1, 0])], 1)
@example([("crash", True), ("deliver", 0), ("batch", [1, 2, 3, 4, 5, 0])], 4)
def test_applied_count_equals_distinct_ids_under_any_interleaving(ops: list[tuple[str, Any]], window: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        total, seen = asyncio.run(_play(Path(tmp), ops, window))
    assert total == len(seen)


async def test_a_crash_after_a_batch_commit_settles_every_event_of_that_commit(tmp_path: Path) -> None:
    # Four events committed together, then the process dies before any of their results is stored. The next
    # activation must record all four as applied: once later events have pushed them out of the context's
    # recent ids, only those results stop a resend from applying them again.
    sqlite = SqliteStateStore(tmp_path / "state.db")
    store = FaultyStore(sqlite)
    aos = await _kernel(tmp_path, store, 4)
    batch = [Event(id=f"b{n}", type="hit") for n in range(4)]
    for event in batch:
        await aos.records.accept(event, ["t1"], kind="message")
    store.fail_next_result = True
    try:
        await aos.apply_deliveries("t1", batch)
    except CrashBetweenCommitAndResult:
        pass
    else:
        raise AssertionError("the batch's first result write should have crashed")
    await aos.shutdown()
    aos = await _kernel(tmp_path, store, 4)
    try:
        for n in range(8):
            await aos.send_message("t1", Event(id=f"later{n}", type="hit"))
        resent = await aos.apply_deliveries("t1", batch)
        assert [r.status for r in resent] == ["duplicate"] * 4
        assert ((await aos.read_context("t1")) or {})["state"]["total"] == 12
        records = [await aos.records.get(event.id) for event in batch]
        assert [r.status if r else None for r in records] == ["completed"] * 4
    finally:
        await aos.shutdown()
        await sqlite.close()
