"""Sentence vectors pooled from their passage's token states (`Settings.sentence_vectors = "pooled"`).

An encoder that exposes its final hidden states (e5 on torch, `E5Embedder.token_pooling`) gives a sentence the
mean of the states of its tokens inside a passage embedded in the same run, instead of encoding the sentence
on its own: the sentence costs no encoder work. A sentence that no such passage holds whole, or whose tokens a
passage splits differently (a token across its ends) or cuts into two windows, is encoded alone.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from rag.e5fast import TokenSpans, pool, pool_rows
from rag.types import Chunk

SENTENCE_VECTORS = ("encoded", "pooled")


def check(value: str) -> str:
    if value not in SENTENCE_VECTORS:
        raise ValueError(f"sentence_vectors must be one of {', '.join(SENTENCE_VECTORS)}, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Pooled:
    """Where a sentence's vector comes from: token rows [lo, hi) of `passage` as the encoder reads it."""

    passage: str
    rows: tuple[int, int]

    @property
    def key(self) -> str:
        """The text the vector is known by (in one ingest's work list and its checkpoint cache): the passage
        and rows, so it never meets a text encoded alone."""
        return f"\x00pooled {self.rows[0]} {self.rows[1]}\x00{self.passage}"


def plan(
    chunks: Sequence[Chunk],
    chunk_reuse: Sequence[int | None],
    sentences: Sequence[tuple[str, int, int]],
    sentence_reuse: Sequence[int | None],
    spans_of: Callable[[str], TokenSpans],
) -> dict[int, Pooled]:
    """Sentence row → where it is pooled from, for the sentences that need a vector (reuse None) and lie whole
    in a passage that is embedded now (reuse None): the first such passage, in row order, whose tokens fit."""
    fresh: dict[str, list[int]] = {}  # doc_id → its fresh chunks' rows, by start
    for r, c in enumerate(chunks):
        if chunk_reuse[r] is None:
            fresh.setdefault(c.doc_id, []).append(r)
    starts = {d: [chunks[r].start for r in rows] for d, rows in fresh.items()}
    spans: dict[int, TokenSpans] = {}
    out: dict[int, Pooled] = {}
    for i, (doc_id, a, b) in enumerate(sentences):
        if sentence_reuse[i] is not None or doc_id not in fresh:
            continue
        for r in _holding(chunks, fresh[doc_id], starts[doc_id], a, b):
            c = chunks[r]
            if r not in spans:
                spans[r] = spans_of(c.text)
            found = pool_rows(spans[r], a - c.start, b - c.start)
            if found is not None:
                out[i] = Pooled(c.text, found)
                break
    return out


def by_passage(pooled: Sequence[Pooled]) -> dict[str, list[Pooled]]:
    """The sentences to pool, by the passage whose states they need (passages in first-needed order)."""
    out: dict[str, list[Pooled]] = {}
    for p in pooled:
        out.setdefault(p.passage, []).append(p)
    return out


def pool_batch(
    texts: Sequence[str], states: Sequence[np.ndarray], waiting: dict[str, list[Pooled]]
) -> tuple[list[str], np.ndarray]:
    """The keys and vectors of the sentences pooled from `texts`' token states (`states[i]` of `texts[i]`)."""
    keys: list[str] = []
    vectors: list[np.ndarray] = []
    for text, rows in zip(texts, states, strict=True):
        for p in waiting.get(text, ()):
            keys.append(p.key)
            vectors.append(pool(rows, p.rows))
    return keys, np.stack(vectors) if vectors else np.zeros((0, states[0].shape[1] if states else 0), np.float32)


def _holding(chunks: Sequence[Chunk], rows: list[int], starts: list[int], a: int, b: int) -> list[int]:
    """Rows (of a document's chunks, by start) of the chunks holding characters [a, b), in row order: walks
    back from the last chunk starting at or before `a` while chunks reach `b` (a document's chunks follow
    each other, so their ends grow too)."""
    out = []
    j = bisect.bisect_right(starts, a) - 1
    while j >= 0 and chunks[rows[j]].end >= b:
        out.append(rows[j])
        j -= 1
    return out[::-1]
