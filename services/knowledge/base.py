"""The knowledge base: documents with metadata, per agent or shared, chunked and searched with SQLite FTS5 (BM25).

Each document lives in a scope: `shared` (every agent reads it) or one agent's id (only that agent). A
search by an agent covers its own scope and `shared`. Chunks are stored in a plain table and indexed by an
external-content FTS5 table in the same transaction, so a document is replaced or removed atomically.
Hits name `scope/doc_id#chunk`, which agents put in their decision records as citations.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aos_core.clock import SystemClock
from aos_core.errors import AOSError, NotFoundError
from aos_core.ports import Clock
from services.knowledge.chunking import chunk_text
from services.sqlite import SqliteDatabase

SHARED = "shared"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$")
_META_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TOKEN = re.compile(r"\w+", re.UNICODE)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    scope TEXT NOT NULL, doc_id TEXT NOT NULL, title TEXT NOT NULL, metadata TEXT NOT NULL,
    chunks INTEGER NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (scope, doc_id));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, scope TEXT NOT NULL, doc_id TEXT NOT NULL, seq INTEGER NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_by_doc ON chunks (scope, doc_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, content='chunks', content_rowid='id', tokenize='porter unicode61');
"""


class InvalidDocumentError(AOSError, ValueError):
    """A document or query is not valid (bad id, empty text, metadata that is not flat JSON); nothing changed."""


@dataclass(frozen=True, slots=True)
class KnowledgeHit:
    """One matching chunk. `score` is BM25 relevance (higher is better); `citation` is `scope/doc_id#seq`."""

    doc_id: str
    scope: str
    seq: int
    title: str
    text: str
    snippet: str
    score: float
    metadata: dict[str, Any]

    @property
    def citation(self) -> str:
        return f"{self.scope}/{self.doc_id}#{self.seq}"

    def to_dict(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "scope": self.scope, "seq": self.seq, "title": self.title,
                "snippet": self.snippet, "score": self.score, "metadata": self.metadata, "citation": self.citation}


class KnowledgeBase:
    """Ingest, replace, delete and search documents in one SQLite file (`data_dir/knowledge.db` by default)."""

    def __init__(self, path: str | Path = ":memory:", *, clock: Clock | None = None, max_words: int = 180,
                 overlap: int = 30) -> None:
        self.db = SqliteDatabase(path, schema=_SCHEMA)
        self.clock = clock or SystemClock()
        self.max_words, self.overlap = max_words, overlap

    async def ingest(self, doc_id: str, text: str, *, title: str = "", metadata: dict[str, Any] | None = None,
                     scope: str = SHARED) -> int:
        """Store (or replace) a document in `scope` and return how many chunks it became."""
        rows = self._prepare(doc_id, text, title, metadata, scope)
        return await self.db.write(lambda conn: self._store(conn, *rows))

    async def ingest_many(self, documents: list[dict[str, Any]], *, scope: str = SHARED) -> int:
        """Ingest `{"doc_id", "text", "title"?, "metadata"?}` items in one transaction; all or nothing."""
        prepared = []
        for i, doc in enumerate(documents):
            try:
                prepared.append(self._prepare(doc["doc_id"], doc["text"], doc.get("title", ""),
                                              doc.get("metadata"), doc.get("scope", scope)))
            except KeyError as exc:
                raise InvalidDocumentError(f"documents[{i}]: missing {exc.args[0]!r}") from None
            except InvalidDocumentError as exc:
                raise InvalidDocumentError(f"documents[{i}]: {exc}") from None
        return await self.db.write(lambda conn: sum(self._store(conn, *rows) for rows in prepared))

    async def delete(self, doc_id: str, *, scope: str = SHARED) -> bool:
        """Remove a document and its chunks; False if it was not there."""
        _check_id(doc_id, "doc_id")
        _check_id(scope, "scope")

        def delete(conn: sqlite3.Connection) -> bool:
            self._drop_chunks(conn, scope, doc_id)
            return conn.execute("DELETE FROM documents WHERE scope=? AND doc_id=?", (scope, doc_id)).rowcount > 0

        return await self.db.write(delete)

    async def get(self, doc_id: str, *, scope: str = SHARED) -> dict[str, Any]:
        """The document's title, metadata and full text (chunks joined); NotFoundError if missing."""
        _check_id(doc_id, "doc_id")

        def read(conn: sqlite3.Connection) -> Any:
            doc = conn.execute("SELECT title, metadata, chunks, updated_at FROM documents WHERE scope=? AND doc_id=?",
                               (scope, doc_id)).fetchone()
            texts = [r[0] for r in conn.execute("SELECT text FROM chunks WHERE scope=? AND doc_id=? ORDER BY seq",
                                                (scope, doc_id))]
            return doc, texts

        doc, texts = await self.db.read(read)
        if doc is None:
            raise NotFoundError(f"knowledge document {scope}/{doc_id} does not exist")
        return {"doc_id": doc_id, "scope": scope, "title": doc[0], "metadata": json.loads(doc[1]),
                "chunks": doc[2], "updated_at": doc[3], "text": "\n\n".join(texts)}

    async def search(self, query: str, *, agent_id: str | None = None, limit: int = 5,
                     where: dict[str, Any] | None = None, per_document: bool = True) -> list[KnowledgeHit]:
        """The most relevant chunks for `query` (BM25, title weighted double), best first.

        `agent_id` adds that agent's own documents to the shared ones. `where` keeps documents whose
        metadata has those exact values. `per_document` keeps only the best chunk of each document.
        """
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise InvalidDocumentError("limit must be an int from 1 to 100")
        tokens = _TOKEN.findall(query.lower()) if isinstance(query, str) else []
        if not tokens:
            raise InvalidDocumentError("query must contain at least one word")
        match = " OR ".join(f'"{t}"' for t in dict.fromkeys(tokens))  # quoted: no FTS syntax from users
        scopes = [SHARED] if agent_id is None else [SHARED, _check_id(agent_id, "agent_id")]
        # No snippet() here: SQLite would compute it for every match before sorting; _snippet does the few kept.
        sql = ["SELECT c.scope, c.doc_id, c.seq, c.title, c.text, d.metadata, -bm25(chunks_fts, 2.0, 1.0) AS score",
               "FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid",
               "JOIN documents d ON d.scope = c.scope AND d.doc_id = c.doc_id",
               f"WHERE chunks_fts MATCH ? AND c.scope IN ({','.join('?' * len(scopes))})"]
        params: list[Any] = [match, *scopes]
        for key, value in (where or {}).items():
            if not _META_KEY.match(key):
                raise InvalidDocumentError(f"invalid metadata key {key!r} in where")
            sql.append(f"AND json_extract(d.metadata, '$.{key}') IS ?")
            params.append(value)
        sql.append("ORDER BY score DESC, c.doc_id, c.seq LIMIT ?")
        params.append(limit * 8 if per_document else limit)

        rows = await self.db.read(lambda conn: conn.execute(" ".join(sql), params).fetchall())
        hits: list[KnowledgeHit] = []
        seen: set[tuple[str, str]] = set()
        stems = {t[:5] for t in tokens}
        for scope, doc_id, seq, title, text, metadata, score in rows:
            if per_document and (scope, doc_id) in seen:
                continue
            seen.add((scope, doc_id))
            hits.append(KnowledgeHit(doc_id, scope, seq, title, text, _snippet(text, stems), round(score, 6),
                                     json.loads(metadata)))
            if len(hits) == limit:
                break
        return hits

    async def count(self) -> dict[str, int]:
        """How many documents and chunks are stored."""
        return await self.db.read(lambda conn: {
            "documents": conn.execute("SELECT count(*) FROM documents").fetchone()[0],
            "chunks": conn.execute("SELECT count(*) FROM chunks").fetchone()[0]})

    async def close(self) -> None:
        await self.db.close()

    # --- internals ----------------------------------------------------------------------------------

    def _prepare(self, doc_id: Any, text: Any, title: Any, metadata: Any, scope: Any) -> tuple[Any, ...]:
        _check_id(doc_id, "doc_id")
        _check_id(scope, "scope")
        if not isinstance(text, str) or not text.strip():
            raise InvalidDocumentError(f"document {doc_id!r}: text must be a non-empty string")
        if not isinstance(title, str):
            raise InvalidDocumentError(f"document {doc_id!r}: title must be a string")
        metadata = {} if metadata is None else metadata
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and _META_KEY.match(k) and (v is None or isinstance(v, str | int | float | bool))
                for k, v in metadata.items()):
            raise InvalidDocumentError(f"document {doc_id!r}: metadata must be an object of named scalar values")
        chunks = chunk_text(text, max_words=self.max_words, overlap=self.overlap)
        now: datetime = self.clock.now()
        return scope, doc_id, title, json.dumps(metadata, sort_keys=True), chunks, now.isoformat()

    def _store(self, conn: sqlite3.Connection, scope: str, doc_id: str, title: str, metadata: str,
               chunks: list[Any], updated_at: str) -> int:
        self._drop_chunks(conn, scope, doc_id)
        conn.execute("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?, ?)",
                     (scope, doc_id, title, metadata, len(chunks), updated_at))
        for chunk in chunks:
            cur = conn.execute("INSERT INTO chunks (scope, doc_id, seq, title, text) VALUES (?, ?, ?, ?, ?)",
                               (scope, doc_id, chunk.seq, title, chunk.text))
            conn.execute("INSERT INTO chunks_fts (rowid, title, text) VALUES (?, ?, ?)",
                         (cur.lastrowid, title, chunk.text))
        return len(chunks)

    @staticmethod
    def _drop_chunks(conn: sqlite3.Connection, scope: str, doc_id: str) -> None:
        old = conn.execute("SELECT id, title, text FROM chunks WHERE scope=? AND doc_id=?", (scope, doc_id)).fetchall()
        # External-content FTS5 forgets a row only when told its old values.
        conn.executemany("INSERT INTO chunks_fts (chunks_fts, rowid, title, text) VALUES ('delete', ?, ?, ?)", old)
        conn.execute("DELETE FROM chunks WHERE scope=? AND doc_id=?", (scope, doc_id))


def _snippet(text: str, stems: set[str], width: int = 24) -> str:
    """Up to `width` words around the first query word, matches in [brackets] (prefix match, like the stemmer)."""
    words = text.split()
    marked = list(words)
    hits = [i for i, w in enumerate(words) if any(t.lower()[:5] in stems for t in _TOKEN.findall(w))]
    for i in hits:
        marked[i] = f"[{words[i]}]"
    start = max(0, (hits[0] if hits else 0) - width // 3)
    piece = " ".join(marked[start:start + width])
    return ("..." if start else "") + piece + ("..." if start + width < len(words) else "")


def _check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidDocumentError(f"invalid {what} {value!r}: use 1-200 letters, digits, '_', '.', ':' or '-'")
    return value
