"""Hybrid retrieval: dense channels + BM25, fused, re-scored per sentence, editions folded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.lang import base
from rag.store import Index
from rag.types import Chunk, Hit


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict retrieval to some newsletters or sections; empty fields don't filter."""

    language: str = ""  # "en" / "zh"
    issue: str = ""
    date_from: str = ""  # ISO dates; an issue matches when its period overlaps [date_from, date_to]
    date_to: str = ""
    section: str = ""  # case-insensitive substring of the section name
    doc_ids: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return any((self.language, self.issue, self.date_from, self.date_to, self.section, self.doc_ids))


@dataclass(frozen=True, slots=True)
class FusionSettings:
    """Channel weights and the second stage; defaults are tuned on the XQuAD dev split."""

    weights: Mapping[str, float]
    candidates: int = 40
    rerank: bool = True
    rerank_depth: int = 20
    sentence_weight: float = 0.5
    fold_threshold: float = 0.75  # cross-lingual cosine above which two editions' passages are one


def allowed_rows(index: Index, filters: Filters) -> np.ndarray | None:
    """Boolean mask of chunk rows that pass the filters, or None when nothing is filtered."""
    if not filters:
        return None
    ok_docs = {doc_id for doc_id, d in index.documents.items() if _doc_passes(d.meta, d.language, doc_id, filters)}
    section = filters.section.lower()
    return np.array(
        [c.doc_id in ok_docs and (not section or section in c.section.lower()) for c in index.chunks], dtype=bool
    )


def _doc_passes(meta, language: str, doc_id: str, f: Filters) -> bool:  # type: ignore[no-untyped-def]
    if f.doc_ids and doc_id not in f.doc_ids:
        return False
    if f.language and base(f.language) != base(language):
        return False
    if f.issue and str(meta.issue).strip() != str(f.issue).strip():
        return False
    if f.date_from and meta.date_end and meta.date_end < f.date_from:
        return False
    return not (f.date_to and meta.date_start and meta.date_start > f.date_to)


def search(
    index: Index,
    query: str,
    query_vectors: Mapping[str, np.ndarray],
    fusion: FusionSettings,
    filters: Filters = Filters(),
    k: int = 5,
    prefer_language: str = "",
) -> list[Hit]:
    """Top-k hits for one query; `query_vectors` holds one normalised vector per dense channel."""
    n = len(index.chunks)
    if n == 0:
        return []
    mask = allowed_rows(index, filters)
    if mask is not None and not mask.any():
        return []
    channel_scores: dict[str, np.ndarray] = {}
    candidates: set[int] = set()
    for channel, q in query_vectors.items():
        scores = index.vectors[channel] @ q  # exact; a few ms even for tens of thousands of chunks
        channel_scores[channel] = scores
        candidates.update(_top(scores, mask, fusion.candidates))
    if index.lexical is not None and fusion.weights.get("bm25", 0) > 0:
        lex = np.zeros(n, np.float32)
        for row, score in index.lexical.search(query, k=max(fusion.candidates * 3, 50)):
            lex[row] = score
        channel_scores["bm25"] = lex
        candidates.update(_top(lex, mask, fusion.candidates))
    rows = np.array(sorted(candidates), dtype=np.int64)
    if mask is not None:
        rows = rows[mask[rows]]
    if not len(rows):
        return []
    per_channel = {ch: s[rows] for ch, s in channel_scores.items()}
    fused = _fuse(per_channel, fusion.weights)
    order = np.argsort(-fused, kind="stable")
    rows, fused = rows[order], fused[order]
    per_channel = {ch: s[order] for ch, s in per_channel.items()}
    if fusion.rerank:
        depth = min(fusion.rerank_depth, len(rows))
        sent = _sentence_scores(index, rows[:depth], query_vectors)
        if sent:
            bonus = _fuse(sent, {ch: fusion.weights.get(ch, 1.0) for ch in sent})
            fused = fused.copy()
            fused[:depth] += fusion.sentence_weight * bonus
            for ch, v in sent.items():
                per_channel[f"{ch}_sentence"] = np.concatenate([v, np.full(len(rows) - depth, np.nan)])
            order = np.argsort(-fused, kind="stable")
            rows, fused = rows[order], fused[order]
            per_channel = {ch: s[order] for ch, s in per_channel.items()}
    hits = [
        Hit(
            chunk=index.chunks[r],
            score=float(fused[i]),
            channels={ch: float(v[i]) for ch, v in per_channel.items() if not np.isnan(v[i])},
        )
        for i, r in enumerate(rows)
    ]
    return fold_editions(index, hits, fusion.fold_threshold, prefer_language)[:k]


def _top(scores: np.ndarray, mask: np.ndarray | None, k: int) -> list[int]:
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(r) for r in top if np.isfinite(scores[r])]


def _fuse(per_channel: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
    """Weighted sum of per-query z-scores: puts cosine and BM25 scales on one footing."""
    total = None
    for ch, s in per_channel.items():
        w = weights.get(ch, 1.0)
        if w == 0:
            continue
        std = float(s.std())
        z = (s - s.mean()) / std if std > 1e-9 else np.zeros_like(s)
        total = w * z if total is None else total + w * z
    if total is None:
        return np.zeros(len(next(iter(per_channel.values()))), np.float32)
    return total


def _sentence_scores(index: Index, rows: np.ndarray, query_vectors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per channel, the best sentence cosine inside each candidate chunk."""
    out: dict[str, np.ndarray] = {}
    for ch, q in query_vectors.items():
        sv = index.sentence_vectors.get(ch)
        if sv is None or not len(sv):
            continue
        best = np.full(len(rows), -1.0, np.float32)
        for i, r in enumerate(rows):
            srows = index.chunk_sentences[int(r)]
            if srows:
                best[i] = float((sv[srows] @ q).max())
        out[ch] = best
    return out


def fold_editions(index: Index, hits: Sequence[Hit], threshold: float, prefer_language: str = "") -> list[Hit]:
    """Show a passage found in several editions of one issue once, naming the other editions."""
    if not index.vectors or len(hits) < 2:
        return list(hits)
    channel = next(iter(index.vectors))
    vectors = index.vectors[channel]
    row_of = {c.chunk_id: i for i, c in enumerate(index.chunks)}
    kept: list[Hit] = []
    groups: list[list[Hit]] = []
    for hit in hits:
        key = _edition_key(index, hit.chunk)
        for group in groups:
            lead = group[0]
            if (
                key
                and key == _edition_key(index, lead.chunk)
                and lead.chunk.doc_id != hit.chunk.doc_id
                and all(h.chunk.doc_id != hit.chunk.doc_id for h in group)
                and float(vectors[row_of[lead.chunk.chunk_id]] @ vectors[row_of[hit.chunk.chunk_id]]) >= threshold
            ):
                group.append(hit)
                break
        else:
            groups.append([hit])
    for group in groups:
        best = group[0]
        if prefer_language:
            same = [h for h in group if base(h.chunk.language) == base(prefer_language)]
            if same:
                best = same[0]
        others = tuple(h.chunk.doc_id for h in group if h is not best)
        kept.append(Hit(chunk=best.chunk, score=group[0].score, channels=best.channels, also_in=others))
    return kept


def _edition_key(index: Index, chunk: Chunk) -> str:
    doc = index.documents.get(chunk.doc_id)
    if doc is None:
        return ""
    return doc.meta.edition_of or f"{doc.meta.title}|{doc.meta.issue}"
