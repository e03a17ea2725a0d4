"""One contract for every StateStore/BlobStore implementation, run against each of them.

`azure` is BlobStateStore on Azurite (the `azurite` session fixture); it starts each test from an empty account.
`cosmos` is CosmosStateStore on the local Cosmos DB server (the `cosmosdb` session fixture), a new database per
test (and per hypothesis example).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aos_core.errors import ConflictError, NotFoundError
from aos_core.ports import BlobStore, StateStore
from services.storage import InMemoryStateStore, SqliteStateStore

KINDS = ["sqlite", "memory", "azure", "cosmos"]
Store = Any  # Sqlite-, InMemory-, Blob- or CosmosStateStore (the last two are imported only when used)


def make_store(kind: str, folder: Path, connection_string: str | None = None) -> Store:
    if kind == "sqlite":
        return SqliteStateStore(folder / f"state-{uuid.uuid4().hex}.db")
    if kind == "memory":
        return InMemoryStateStore()
    if kind == "cosmos":
        from services.storage.connections import resolve_cosmos_connection
        from services.storage.cosmos import CosmosStateStore

        assert connection_string is not None
        connection = resolve_cosmos_connection("CosmosDBConnection", {"CosmosDBConnection": connection_string})
        return CosmosStateStore(connection, database=f"aos-{uuid.uuid4().hex[:12]}")
    from services.storage.blob import BlobStateStore
    from services.storage.connections import resolve_storage_connection

    assert connection_string is not None
    connection = resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage": connection_string})
    return BlobStateStore(connection, container=f"state-{uuid.uuid4().hex[:12]}")


async def empty_account(connection_string: str) -> None:
    """Delete every container, so blob listings in one test never see another test's containers."""
    from azure.storage.blob.aio import BlobServiceClient

    async with BlobServiceClient.from_connection_string(connection_string) as client:
        names = [c.name async for c in client.list_containers()]
        await asyncio.gather(*(client.delete_container(name) for name in names))


def _connection_string(kind: str, request: pytest.FixtureRequest) -> str | None:
    fixture = {"azure": "azurite", "cosmos": "cosmosdb"}.get(kind)
    return None if fixture is None else request.getfixturevalue(fixture).connection_string


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    connection_string = _connection_string(request.param, request)
    if request.param == "azure":
        assert connection_string is not None
        await empty_account(connection_string)
    s = make_store(request.param, tmp_path, connection_string)
    yield s
    await s.close()


def test_implements_both_ports(store: Store) -> None:
    assert isinstance(store, StateStore)
    assert isinstance(store, BlobStore)


# --- documents ------------------------------------------------------------------------------------


async def test_get_put_replace(store: Store) -> None:
    assert await store.get("a/b") is None
    etag1 = await store.put("a/b", {"n": 1, "tags": ["x"]})
    doc = await store.get("a/b")
    assert doc is not None and doc.key == "a/b" and doc.value == {"n": 1, "tags": ["x"]} and doc.etag == etag1
    etag2 = await store.put("a/b", [1, 2.5, None, True, "s"])
    assert etag2 != etag1
    doc = await store.get("a/b")
    assert doc is not None and doc.value == [1, 2.5, None, True, "s"] and doc.etag == etag2


@pytest.mark.parametrize("value", [None, 0, -7, 1.5, "", "text", True, False, [], {}, {"nested": {"a": [1, {}]}}])
async def test_any_json_value_round_trips(store: Store, value: Any) -> None:
    await store.put("v", value)
    doc = await store.get("v")
    assert doc is not None and doc.value == value and type(doc.value) is type(value)


async def test_every_write_changes_the_etag(store: Store) -> None:
    etags = {await store.put("k", {"same": "value"}) for _ in range(20)}
    assert len(etags) == 20
    await store.delete("k")
    assert await store.put("k", {"same": "value"}) not in etags  # recreating never reuses an old ETag


async def test_stored_value_is_a_copy(store: Store) -> None:
    value = {"items": [1]}
    await store.put("k", value)
    value["items"].append(2)
    doc = await store.get("k")
    assert doc is not None and doc.value == {"items": [1]}
    doc.value["items"].append(3)
    again = await store.get("k")
    assert again is not None and again.value == {"items": [1]}


async def test_if_match(store: Store) -> None:
    etag = await store.put("k", 1)
    etag2 = await store.put("k", 2, if_match=etag)
    with pytest.raises(ConflictError) as info:
        await store.put("k", 3, if_match=etag)  # stale
    assert info.value.key == "k"
    doc = await store.get("k")
    assert doc is not None and doc.value == 2 and doc.etag == etag2
    with pytest.raises(ConflictError):
        await store.put("missing", 1, if_match=etag2)
    assert await store.get("missing") is None


async def test_if_none_match_creates_only(store: Store) -> None:
    etag = await store.put("k", "first", if_none_match=True)
    with pytest.raises(ConflictError):
        await store.put("k", "second", if_none_match=True)
    doc = await store.get("k")
    assert doc is not None and doc.value == "first" and doc.etag == etag


async def test_create_many_creates_what_is_new_and_leaves_what_exists(store: Store) -> None:
    kept = await store.put("events/b", "first")
    etags = await store.create_many([("events/a", {"n": 1}), ("events/b", "second"), ("events/c", [3]),
                                     ("events/a", "again")])
    assert etags[1] is None and etags[3] is None  # existed before the call, or earlier in it
    assert etags[0] is not None and etags[2] is not None
    docs = {d.key: d for d in await store.list("events/")}
    assert {k: d.value for k, d in docs.items()} == {"events/a": {"n": 1}, "events/b": "first", "events/c": [3]}
    assert (docs["events/a"].etag, docs["events/b"].etag, docs["events/c"].etag) == (etags[0], kept, etags[2])
    assert await store.create_many([]) == []


async def test_etag_is_the_etag_get_returns_without_the_value(store: Store) -> None:
    assert await store.etag("r/a") is None
    first = await store.put("r/a", {"big": "x" * 10_000})
    assert await store.etag("r/a") == first == (await store.get("r/a")).etag
    second = await store.put("r/a", {"big": "y"}, if_match=first)
    assert await store.etag("r/a") == second != first
    await store.delete("r/a")
    assert await store.etag("r/a") is None
    with pytest.raises(ValueError):
        await store.etag("")


async def test_get_many_reads_each_key_in_order(store: Store) -> None:
    etags = {key: await store.put(key, {"key": key}) for key in ("r/a", "r/c")}
    docs = await store.get_many(["r/c", "r/b", "r/a", "r/c"])
    assert [d.value if d else None for d in docs] == [{"key": "r/c"}, None, {"key": "r/a"}, {"key": "r/c"}]
    assert [d.etag if d else None for d in docs] == [etags["r/c"], None, etags["r/a"], etags["r/c"]]
    assert await store.get_many([]) == []
    with pytest.raises(ValueError):
        await store.get_many(["r/a", ""])


async def test_create_many_with_a_bad_item_writes_nothing(store: Store) -> None:
    with pytest.raises((ValueError, TypeError)):
        await store.create_many([("ok", 1), ("bad", math.nan)])
    with pytest.raises(ValueError):
        await store.create_many([("ok", 1), ("", 2)])
    assert await store.list() == []


async def test_if_match_and_if_none_match_together_are_refused(store: Store) -> None:
    etag = await store.put("k", 1)
    with pytest.raises(ValueError):
        await store.put("k", 2, if_match=etag, if_none_match=True)


async def test_delete(store: Store) -> None:
    assert await store.delete("k") is False
    await store.put("k", 1)
    assert await store.delete("k") is True
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_delete_if_match(store: Store) -> None:
    old = await store.put("k", 1)
    current = await store.put("k", 2)
    with pytest.raises(ConflictError):
        await store.delete("k", if_match=old)
    doc = await store.get("k")
    assert doc is not None and doc.value == 2
    assert await store.delete("k", if_match=current) is True
    assert await store.get("k") is None
    with pytest.raises(ConflictError):  # an ETag asserts the document exists
        await store.delete("k", if_match=current)


async def test_list_by_prefix_in_key_order_without_neighbours(store: Store) -> None:
    for key in ["a/bc", "a/b/2", "a0", "a/b", "a/b/1", "a/a", "a/b/10", "b"]:
        await store.put(key, key.upper())
    docs = await store.list("a/b/")
    assert [d.key for d in docs] == ["a/b/1", "a/b/10", "a/b/2"]
    assert [d.value for d in docs] == ["A/B/1", "A/B/10", "A/B/2"]
    assert [d.key for d in await store.list("a/b")] == ["a/b", "a/b/1", "a/b/10", "a/b/2", "a/bc"]
    assert [d.key for d in await store.list("a/")] == ["a/a", "a/b", "a/b/1", "a/b/10", "a/b/2", "a/bc"]
    assert [d.key for d in await store.list()] == sorted(["a/bc", "a/b/2", "a0", "a/b", "a/b/1", "a/a", "a/b/10", "b"])
    assert await store.list("zzz") == []
    assert await store.count("a/b") == 5 and await store.count("a/b/") == 3 and await store.count() == 8


async def test_list_treats_like_wildcards_literally(store: Store) -> None:
    for key in ["x%/1", "x_/1", "xa/1", "xy/1"]:
        await store.put(key, 1)
    assert [d.key for d in await store.list("x%")] == ["x%/1"]
    assert [d.key for d in await store.list("x_")] == ["x_/1"]


async def test_list_pages_with_start_after_and_limit(store: Store) -> None:
    keys = [f"p/{i:03d}" for i in range(25)]
    for key in reversed(keys):
        await store.put(key, {"k": key})
    await store.put("p0", "neighbour")
    await store.put("o", "before")
    seen: list[str] = []
    start_after: str | None = None
    while page := await store.list("p/", start_after=start_after, limit=10):
        assert len(page) <= 10
        seen.extend(d.key for d in page)
        start_after = page[-1].key
    assert seen == keys
    assert [d.key for d in await store.list("p/", start_after="p/0105", limit=2)] == ["p/011", "p/012"]
    assert [d.key for d in await store.list("p/", start_after="a", limit=1)] == ["p/000"]  # before the prefix
    assert await store.list("p/", start_after="q") == []
    assert await store.list("p/", limit=0) == []


async def test_unicode_keys_and_values_round_trip(store: Store) -> None:
    entries = {
        "ünï/çødé": {"名前": "テスト", "emoji": "🚀"},
        "ünï/𝄞": "\u0000\ud800 lone surrogate in a value",
        "ünï/z": 1,
    }
    for key, value in entries.items():
        await store.put(key, value)
    for key, value in entries.items():
        doc = await store.get(key)
        assert doc is not None and doc.value == value
    assert [d.key for d in await store.list("ünï/")] == sorted(entries)
    await store.put("\U0010ffff", 1)
    await store.put("\U0010ffff\U0010ffff", 2)
    assert [d.key for d in await store.list("\U0010ffff")] == ["\U0010ffff", "\U0010ffff\U0010ffff"]
    await store.put("\ud7ff/x", 3)
    await store.put("\ue000", 4)  # the first code point after the surrogates
    assert [d.key for d in await store.list("\ud7ff")] == ["\ud7ff/x"]


@pytest.mark.parametrize("key", ["", "x" * 1025, None, 7, b"bytes", "lone \udc00 surrogate"])
async def test_invalid_keys_are_rejected(store: Store, key: Any) -> None:
    with pytest.raises(ValueError):
        await store.put(key, 1)
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    assert await store.count() == 0


async def test_longest_key_is_accepted(store: Store) -> None:
    key = "k" * 1024
    await store.put(key, 1)
    doc = await store.get(key)
    assert doc is not None and doc.value == 1


@pytest.mark.parametrize("value", [math.nan, math.inf, {"set": {1, 2}}, object(), b"bytes", {"f": print}])
async def test_non_json_values_are_rejected_without_writing(store: Store, value: Any) -> None:
    etag = await store.put("k", "original")
    with pytest.raises((ValueError, TypeError)):
        await store.put("k", value)
    with pytest.raises((ValueError, TypeError)):
        await store.put("new", value)
    doc = await store.get("k")
    assert doc is not None and doc.value == "original" and doc.etag == etag
    assert await store.get("new") is None


async def test_concurrent_read_modify_write_loses_no_update(store: Store) -> None:
    await store.put("counter", {"n": 0})
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        while True:
            doc = await store.get("counter")
            assert doc is not None
            await asyncio.sleep(0)  # let the others read the same version, so the races are real
            try:
                await store.put("counter", {"n": doc.value["n"] + 1}, if_match=doc.etag)
                return
            except ConflictError:
                conflicts += 1

    await asyncio.gather(*(increment() for _ in range(100)))
    doc = await store.get("counter")
    assert doc is not None and doc.value == {"n": 100}
    assert conflicts > 0


# --- blobs ----------------------------------------------------------------------------------------


async def test_blob_upload_download_overwrite_list(store: Store) -> None:
    etag1 = await store.upload("container", "reports/q1.txt", "quarterly ✓")
    assert await store.download("container", "reports/q1.txt") == "quarterly ✓".encode()
    etag2 = await store.upload("container", "reports/q1.txt", b"\x00\xffraw")
    assert etag2 != etag1
    assert await store.download("container", "reports/q1.txt") == b"\x00\xffraw"
    await store.upload("container", "reports/q2.txt", bytearray(b"two"))
    await store.upload("container", "reportsx", b"neighbour")
    await store.upload("other-1", "reports/q3.txt", b"other container")
    assert await store.list_blobs("container") == ["reports/q1.txt", "reports/q2.txt", "reportsx"]
    assert await store.list_blobs("container", "reports/") == ["reports/q1.txt", "reports/q2.txt"]
    assert await store.list_blobs("other-1") == ["reports/q3.txt"]
    assert await store.list_blobs("empty") == []
    assert await store.count() == 0  # blobs are not documents


async def test_blob_overwrite_false_conflicts(store: Store) -> None:
    await store.upload("container", "b", b"first", overwrite=False)
    with pytest.raises(ConflictError):
        await store.upload("container", "b", b"second", overwrite=False)
    assert await store.download("container", "b") == b"first"


async def test_missing_blob_is_not_found_and_delete(store: Store) -> None:
    with pytest.raises(NotFoundError):
        await store.download("container", "missing")
    await store.upload("container", "b", b"x")
    assert await store.delete_blob("container", "b") is True
    assert await store.delete_blob("container", "b") is False
    with pytest.raises(NotFoundError):
        await store.download("container", "b")


@pytest.mark.parametrize("container", ["ab", "x" * 64, "Upper", "has_underscore", "-lead", "trail-", "dou--ble", ""])
async def test_invalid_container_names_are_rejected(store: Store, container: str) -> None:
    with pytest.raises(ValueError):
        await store.upload(container, "b", b"x")
    with pytest.raises(ValueError):
        await store.download(container, "b")
    with pytest.raises(ValueError):
        await store.list_blobs(container)


async def test_valid_container_names_and_invalid_blob_names(store: Store) -> None:
    for container in ["abc", "a-b-c", "x" * 63, "0data"]:
        await store.upload(container, "b", b"x")
    for name in ["", "n" * 1025]:
        with pytest.raises(ValueError):
            await store.upload("container", name, b"x")
    with pytest.raises(TypeError):
        await store.upload("container", "b", 42)  # type: ignore[arg-type]
    assert await store.list_blobs("container") == []


# --- property: any sequence of writes leaves the store equal to a dict ----------------------------

_keys = st.sampled_from(["a", "a/b", "a/bc", "a0", "b", "b/1", "é", "\U0010ffff"])
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)
_ops = st.lists(st.tuples(st.sampled_from(["put", "delete"]), _keys, _json), max_size=30)


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_random_writes_match_a_dict_model(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest, ops: list[tuple[str, str, Any]]
) -> None:
    connection_string = _connection_string(kind, request)

    async def check() -> None:
        store = make_store(kind, tmp_path, connection_string)  # azure, cosmos: a new container / database each
        model: dict[str, Any] = {}
        try:
            for op, key, value in ops:
                if op == "put":
                    await store.put(key, value)
                    model[key] = value
                else:
                    existed = key in model
                    model.pop(key, None)
                    assert await store.delete(key) is existed
            docs = await store.list(limit=100)
            assert [d.key for d in docs] == sorted(model)
            assert {d.key: d.value for d in docs} == model
            for prefix in ["a", "a/", "a/b", "b", ""]:
                expected = sorted(k for k in model if k.startswith(prefix))
                assert [d.key for d in await store.list(prefix)] == expected
                assert await store.count(prefix) == len(expected)
        finally:
            await store.close()

    asyncio.run(check())  # hypothesis drives a plain function; each example gets its own loop and store
