"""The `Storage` calls exactly as users write them (see DESIGN.md), over both embedded stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from aos_core.errors import NotFoundError
from services.storage import InMemoryStateStore, SqliteStateStore, Storage


@pytest.fixture(params=["sqlite", "memory"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    store = SqliteStateStore(tmp_path / "state.db") if request.param == "sqlite" else InMemoryStateStore()
    yield Storage(store)
    await store.close()


async def test_design_calls(storage: Storage) -> None:
    data = b"quarterly numbers"
    await storage.upload("container", "blob", data)
    data = await storage.download("container", "blob")
    assert data == b"quarterly numbers"

    key, value = "settings/theme", {"dark": True}
    etag = await storage.save(key, value)
    assert isinstance(etag, str) and etag
    assert await storage.load(key) == value


async def test_documents(storage: Storage) -> None:
    assert await storage.load("missing") is None
    assert await storage.load("missing", default={"empty": True}) == {"empty": True}
    await storage.save("users/1", {"name": "Ada"})
    await storage.save("users/2", {"name": "Grace"})
    await storage.save("usersx", "neighbour")
    assert await storage.list("users/") == {"users/1": {"name": "Ada"}, "users/2": {"name": "Grace"}}
    assert await storage.delete("users/1") is True
    assert await storage.delete("users/1") is False
    assert await storage.list("users/") == {"users/2": {"name": "Grace"}}


async def test_list_reads_past_one_page(storage: Storage) -> None:
    for i in range(1001):
        await storage.save(f"many/{i:05d}", i)
    everything = await storage.list("many/")
    assert len(everything) == 1001 and list(everything) == sorted(everything)
    assert everything["many/01000"] == 1000


async def test_blobs(storage: Storage) -> None:
    await storage.upload("container", "docs/a.txt", "text is UTF-8 ✓")
    await storage.upload("container", "docs/b.bin", b"\x00\x01")
    assert await storage.download("container", "docs/a.txt") == "text is UTF-8 ✓".encode()
    assert await storage.list_blobs("container") == ["docs/a.txt", "docs/b.bin"]
    assert await storage.list_blobs("container", prefix="docs/b") == ["docs/b.bin"]
    assert await storage.delete_blob("container", "docs/b.bin") is True
    with pytest.raises(NotFoundError):
        await storage.download("container", "docs/b.bin")


async def test_separate_blob_store() -> None:
    documents, blobs = InMemoryStateStore(), InMemoryStateStore()
    storage = Storage(documents, blob_store=blobs)
    await storage.upload("container", "blob", b"x")
    assert await blobs.download("container", "blob") == b"x"
    assert await documents.list_blobs("container") == []


async def test_state_store_without_blobs() -> None:
    class DocumentsOnly:
        """A StateStore that is not a BlobStore (as an Azure Table adapter might be)."""

        def __init__(self) -> None:
            self.inner = InMemoryStateStore()
            self.get, self.put, self.delete = self.inner.get, self.inner.put, self.inner.delete
            self.list, self.close = self.inner.list, self.inner.close

    storage = Storage(DocumentsOnly())  # type: ignore[arg-type]
    await storage.save("k", 1)
    assert await storage.load("k") == 1
    with pytest.raises(RuntimeError, match="blob_store"):
        await storage.upload("container", "blob", b"x")
