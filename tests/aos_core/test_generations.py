"""The generation document is committed in groups: many concurrent changes, few writes, none lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aos_core.generations import GenerationLog, changed_since
from services.storage import SqliteStateStore


class CountingPuts(SqliteStateStore):
    """The SQLite store, counting the writes it is asked for."""

    puts = 0

    async def put(self, *args: object, **kwargs: object) -> str:  # type: ignore[override]
        self.puts += 1
        return await super().put(*args, **kwargs)  # type: ignore[arg-type]


async def test_concurrent_changes_get_distinct_numbers_in_a_few_writes(tmp_path: Path) -> None:
    store = CountingPuts(tmp_path / "state.db")
    log = GenerationLog(store, "things/generation")
    numbers = await asyncio.gather(*(log.record(f"item-{i}") for i in range(1000)))
    assert sorted(numbers) == list(range(1, 1001))
    assert store.puts <= 3  # the first change alone, then the 999 that queued behind it together
    doc = await store.get("things/generation")
    assert doc is not None and doc.value["generation"] == 1000
    assert changed_since(doc.value, 1000 - 200) == [f"item-{i}" for i in range(800, 1000)]
    await store.close()


async def test_two_workers_recording_at_once_lose_no_change(tmp_path: Path) -> None:
    stores = [SqliteStateStore(tmp_path / "state.db") for _ in range(2)]  # two processes' connections
    logs = [GenerationLog(store, "things/generation") for store in stores]
    numbers = await asyncio.gather(*(logs[i % 2].record(f"item-{i}") for i in range(400)))
    assert sorted(numbers) == list(range(1, 401))
    doc = await stores[0].get("things/generation")
    assert doc is not None and doc.value["generation"] == 400
    assert sorted(changed_since(doc.value, 400 - 256) or []) == sorted(
        f"item-{i}" for i, n in enumerate(numbers) if n > 400 - 256)
    for store in stores:
        await store.close()


async def test_a_cancelled_caller_does_not_cancel_the_others_write(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    log = GenerationLog(store, "things/generation")
    first = asyncio.create_task(log.record("a"))
    others = [asyncio.create_task(log.record(f"b{i}")) for i in range(5)]
    await asyncio.sleep(0)
    first.cancel()
    assert sorted(await asyncio.gather(*others)) == [2, 3, 4, 5, 6]
    doc = await store.get("things/generation")
    assert doc is not None and [item for _, item in doc.value["changes"]] == ["a", "b0", "b1", "b2", "b3", "b4"]
    await store.close()


async def test_a_failed_write_fails_its_group_and_the_next_change_is_written(tmp_path: Path) -> None:
    store = SqliteStateStore(tmp_path / "state.db")
    log = GenerationLog(store, "things/generation")
    await store.put("things/generation", {"generation": "not a number", "changes": []})
    results = await asyncio.gather(*(log.record(f"x{i}") for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    await store.put("things/generation", {"generation": 7, "changes": []})
    assert await log.record("y") == 8
    await store.close()
