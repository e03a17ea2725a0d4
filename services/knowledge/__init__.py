"""The knowledge base agents search and cite: documents per agent or shared, chunked, SQLite FTS5 with BM25."""

from __future__ import annotations

from services.knowledge.base import SHARED, InvalidDocumentError, KnowledgeBase, KnowledgeHit
from services.knowledge.chunking import Chunk, chunk_text

__all__ = ["SHARED", "Chunk", "InvalidDocumentError", "KnowledgeBase", "KnowledgeHit", "chunk_text"]
