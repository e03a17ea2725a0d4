"""The knowledge base kept in the StateStore (Blob Storage on Azure), searched through an index per instance.

A Functions instance loses its local files on scale-in, so on Azure the documents live in the StateStore
(`knowledge/docs/<scope>/<doc_id>`: title, metadata, text, time) and every change bumps the generation document
`knowledge/generation` (`aos_core.generations.GenerationLog`). Each instance searches an in-memory SQLite FTS5
index (the embedded `KnowledgeBase`) that it brings up to that generation before every search and count: one
read when nothing changed, else only the documents named since, or a rebuild from the documents when it is
further behind than the changes kept. The index holds what the knowledge base holds, as the file does locally.

Same methods and answers as `KnowledgeBase`, except that `ingest_many` writes documents one at a time (Blob
Storage has no multi-document transaction): every document is validated before the first is written.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aos_core.errors import NotFoundError
from aos_core.generations import GenerationLog, changed_since
from aos_core.ports import Clock, StateStore
from services.knowledge.base import SHARED, InvalidDocumentError, KnowledgeBase, KnowledgeHit, _check_id

PREFIX = "knowledge/docs/"
GENERATION_KEY = "knowledge/generation"


class StoredKnowledgeBase:
    def __init__(self, store: StateStore, *, clock: Clock | None = None, max_words: int = 180,
                 overlap: int = 30) -> None:
        self.store = store
        self._generation = GenerationLog(store, GENERATION_KEY)
        self.index = KnowledgeBase(":memory:", clock=clock, max_words=max_words, overlap=overlap)
        self._seen: tuple[str | None, int] = (None, 0)  # the generation (ETag, number) the index shows
        self._refreshing = asyncio.Lock()

    async def ingest(self, doc_id: str, text: str, *, title: str = "", metadata: dict[str, Any] | None = None,
                     scope: str = SHARED) -> int:
        """Store (or replace) a document in `scope` and return how many chunks it became."""
        return await self._write([self._prepare(doc_id, text, title, metadata, scope)])

    async def ingest_many(self, documents: list[dict[str, Any]], *, scope: str = SHARED) -> int:
        """Ingest `{"doc_id", "text", "title"?, "metadata"?}` items; all are validated before any is written."""
        prepared = []
        for i, doc in enumerate(documents):
            try:
                prepared.append(self._prepare(doc["doc_id"], doc["text"], doc.get("title", ""), doc.get("metadata"),
                                              doc.get("scope", scope)))
            except KeyError as exc:
                raise InvalidDocumentError(f"documents[{i}]: missing {exc.args[0]!r}") from None
            except InvalidDocumentError as exc:
                raise InvalidDocumentError(f"documents[{i}]: {exc}") from None
        return await self._write(prepared)

    async def delete(self, doc_id: str, *, scope: str = SHARED) -> bool:
        """Remove a document; False if it was not there."""
        _check_id(doc_id, "doc_id")
        _check_id(scope, "scope")
        deleted = await self.store.delete(f"{PREFIX}{scope}/{doc_id}")
        if deleted:
            await self._generation.record(f"{scope}/{doc_id}")
        return deleted

    async def get(self, doc_id: str, *, scope: str = SHARED) -> dict[str, Any]:
        """The document's title, metadata and full text; NotFoundError if missing."""
        _check_id(doc_id, "doc_id")
        _check_id(scope, "scope")
        await self._refresh()
        try:
            return await self.index.get(doc_id, scope=scope)
        except NotFoundError:
            raise NotFoundError(f"knowledge document {scope}/{doc_id} does not exist") from None

    async def search(self, query: str, *, agent_id: str | None = None, limit: int = 5,
                     where: dict[str, Any] | None = None, per_document: bool = True) -> list[KnowledgeHit]:
        """As `KnowledgeBase.search`, over every instance's changes up to now."""
        await self._refresh()
        return await self.index.search(query, agent_id=agent_id, limit=limit, where=where, per_document=per_document)

    async def count(self) -> dict[str, int]:
        await self._refresh()
        return await self.index.count()

    async def close(self) -> None:
        await self.index.close()

    # --- internals ----------------------------------------------------------------------------------------

    def _prepare(self, doc_id: Any, text: Any, title: Any, metadata: Any, scope: Any) -> dict[str, Any]:
        scope, doc_id, title, meta, chunks, updated_at = self.index._prepare(doc_id, text, title, metadata, scope)
        return {"scope": scope, "doc_id": doc_id, "title": title, "metadata": json.loads(meta), "text": text,
                "updated_at": updated_at, "chunks": len(chunks)}

    async def _write(self, documents: list[dict[str, Any]]) -> int:
        for doc in documents:
            await self.store.put(f"{PREFIX}{doc['scope']}/{doc['doc_id']}", doc)
            await self._generation.record(f"{doc['scope']}/{doc['doc_id']}")
        return sum(int(doc["chunks"]) for doc in documents)

    async def _refresh(self) -> None:
        generation = await self.store.get(GENERATION_KEY)
        if generation is None or generation.etag == self._seen[0]:
            return
        async with self._refreshing:
            changed = changed_since(generation.value, self._seen[1])
            if changed is None:  # further behind than the changes kept: every document
                changed = [f"{d.value['scope']}/{d.value['doc_id']}" for d in await self._all()]
                old = self.index
                self.index = KnowledgeBase(":memory:", clock=old.clock, max_words=old.max_words,
                                           overlap=old.overlap)
                await old.close()
            for name in changed:
                scope, doc_id = name.split("/", 1)
                doc = await self.store.get(f"{PREFIX}{name}")
                if doc is None:
                    await self.index.delete(doc_id, scope=scope)
                else:
                    value = doc.value
                    await self.index.db.write(lambda conn, v=value: self.index._store(
                        conn, *self.index._prepare(v["doc_id"], v["text"], v["title"], v["metadata"], v["scope"])[:5],
                        v["updated_at"]))
            if int(generation.value["generation"]) > self._seen[1]:
                self._seen = (generation.etag, int(generation.value["generation"]))

    async def _all(self) -> list[Any]:
        docs, after = [], None
        while True:
            page = await self.store.list(PREFIX, start_after=after, limit=500)
            docs += page
            if len(page) < 500:
                return docs
            after = page[-1].key
