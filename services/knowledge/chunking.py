"""Split documents into overlapping chunks of whole paragraphs (or, for long paragraphs, of words).

Search ranks chunks, not documents: a long handbook should surface the paragraph that answers, and a
short chunk keeps BM25's length normalisation meaningful. The overlap keeps a sentence that straddles a
boundary findable from either side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    text: str


def chunk_text(text: str, *, max_words: int = 180, overlap: int = 30) -> list[Chunk]:
    """Chunks of at most `max_words` words; paragraphs are kept whole when they fit, neighbours share `overlap`."""
    if max_words < 1 or not 0 <= overlap < max_words:
        raise ValueError("need max_words >= 1 and 0 <= overlap < max_words")
    pieces: list[list[str]] = []
    for paragraph in _PARAGRAPH.split(text):
        words = paragraph.split()
        if not words:
            continue
        if len(words) <= max_words:
            pieces.append(words)
            continue
        step = max_words - overlap
        pieces += [words[i:i + max_words] for i in range(0, max(1, len(words) - overlap), step)]
    chunks: list[list[str]] = []
    current: list[str] = []
    for words in pieces:
        if current and len(current) + len(words) > max_words:
            chunks.append(current)
            current = current[-overlap:] if overlap and len(current[-overlap:]) + len(words) <= max_words else []
        current = current + words
    if current:
        chunks.append(current)
    return [Chunk(seq, " ".join(words)) for seq, words in enumerate(chunks)]
