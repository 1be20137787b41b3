"""Hybrid retrieval: dense channels + BM25, z-scored and fused, re-scored per sentence, editions folded.

Tuned on the XQuAD dev split only (docs/bench-xquad.md has the log): a weighted sum of per-query z-scores over
the candidates beat min-max, max and reciprocal-rank fusion, and mixing each dense channel's chunk cosine with
its best sentence cosine (the second stage) beat adding a separate sentence bonus on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.lang import base, detect
from rag.store import Index
from rag.types import Chunk, Hit

CROSS = "@cross"  # weights key suffix: the channel's weight on passages in the other language than the question


def _cross_offsets() -> dict[str, float]:
    # 3/4 of the median gap, on XQuAD dev, between a question's cosine with its gold paragraph and with that
    # paragraph's translation (use 0.067, e5 0.10): the translation then competes almost as the original does.
    return {"use": 0.05, "e5": 0.075}


@dataclass(frozen=True, slots=True)
class Filters:
    """Restrict retrieval to some newsletters or sections; empty fields don't filter."""

    language: str = ""  # "en" / "zh"
    issue: str = ""
    date_from: str = ""  # ISO dates; an issue matches when its period overlaps [date_from, date_to]
    date_to: str = ""
    section: str = ""  # case-insensitive substring of the section name
    doc_ids: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()  # doc_ids left out

    def __bool__(self) -> bool:
        return any((self.language, self.issue, self.date_from, self.date_to, self.section, self.doc_ids, self.exclude))


@dataclass(frozen=True, slots=True)
class FusionSettings:
    """Channel weights and the second stage; defaults are tuned on the XQuAD dev split.

    `weights` maps a channel ("use", "e5", "bm25", "st:…") to its weight; a channel left out weighs 1.0.
    `"<channel>@cross"` overrides the weight on passages in the other language than the question's (it
    defaults to the channel's weight), since a channel may be trusted less across languages than within one.
    `cross_offsets` calibrate the dense channels across languages: a model scores a question against a
    translation of the right passage lower than against the original, so other-language passages get the
    typical gap added back before fusion (it only matters when the pool holds both languages).
    """

    weights: Mapping[str, float]
    candidates: int = 40  # per channel, before fusion
    rerank: bool = True  # second stage: mix each dense channel's chunk score with its best sentence's
    sentence_weight: float = 0.75  # the best sentence's share of a dense channel's score in the second stage
    cross_offsets: Mapping[str, float] = field(default_factory=_cross_offsets)  # added to other-language scores
    fold_threshold: float = 0.75  # cross-lingual cosine above which two editions' passages are one

    def weight(self, channel: str, cross: bool = False) -> float:
        """The channel's weight on a passage in the question's language, or (`cross`) in the other one."""
        own = float(self.weights.get(channel, 1.0))
        return float(self.weights.get(channel + CROSS, own)) if cross else own


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
    if (f.doc_ids and doc_id not in f.doc_ids) or doc_id in f.exclude:
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
    """Top-k hits for one query; `query_vectors` holds one normalised vector per dense channel.

    `prefer_language` is the question's language: it picks the edition shown when editions fold, and decides
    which passages are "cross-lingual" for `@cross` weights (detected from the query when empty).
    """
    n = len(index.chunks)
    if n == 0:
        return []
    mask = allowed_rows(index, filters)
    if mask is not None and not mask.any():
        return []
    language = base(prefer_language or detect(query))
    active = [ch for ch in query_vectors if fusion.weight(ch) or fusion.weight(ch, cross=True)]
    scores: dict[str, np.ndarray] = {ch: index.vectors[ch] @ query_vectors[ch] for ch in active}
    candidates: set[int] = set()
    for s in scores.values():
        candidates.update(_top(s, mask, fusion.candidates))
    if index.lexical is not None and (fusion.weight("bm25") or fusion.weight("bm25", cross=True)):
        lex = np.zeros(n, np.float32)
        # A filtered pool needs every match: the top ones overall may all lie outside it.
        depth = n if mask is not None else max(fusion.candidates * 5, 200)
        for row, score in index.lexical.search(query, k=depth, language=language):
            lex[row] = score
        scores["bm25"] = lex
        candidates.update(r for r in _top(lex, mask, fusion.candidates) if lex[r] > 0)
    rows = np.array(sorted(candidates), dtype=np.int64)
    if mask is not None:
        rows = rows[mask[rows]]
    if not len(rows):
        return []
    per_channel = {ch: s[rows] for ch, s in scores.items()}
    fused_inputs = dict(per_channel)
    if fusion.rerank:
        for ch in active:
            best = _best_sentences(index, rows, ch, query_vectors[ch])
            if best is not None:
                per_channel[f"{ch}_sentence"] = best
                has = ~np.isnan(best)
                a = fusion.sentence_weight
                fused_inputs[ch] = np.where(has, (1 - a) * per_channel[ch] + a * np.nan_to_num(best), per_channel[ch])
    cross = np.array([base(index.chunks[r].language) != language for r in rows], dtype=bool)
    if cross.any():
        for ch, offset in fusion.cross_offsets.items():
            if ch in fused_inputs and offset:
                fused_inputs[ch] = fused_inputs[ch] + offset * cross
    fused = _fuse(fused_inputs, fusion, cross)
    order = np.argsort(-fused, kind="stable")
    hits = [
        Hit(
            chunk=index.chunks[rows[i]],
            score=float(fused[i]),
            channels={ch: float(v[i]) for ch, v in per_channel.items() if not np.isnan(v[i])},
        )
        for i in order
    ]
    return _fold(index, hits, rows[order], fusion.fold_threshold, prefer_language)[:k]


def _top(scores: np.ndarray, mask: np.ndarray | None, k: int) -> list[int]:
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(r) for r in top if np.isfinite(scores[r])]


def _fuse(per_channel: Mapping[str, np.ndarray], fusion: FusionSettings, cross: np.ndarray) -> np.ndarray:
    """Weighted sum of per-query z-scores over the candidates: puts cosine and BM25 scales on one footing.

    Each candidate takes the channel's own weight or its `@cross` weight, by the candidate's language.
    """
    total = np.zeros(len(cross), np.float64)
    for ch, s in per_channel.items():
        w_same, w_cross = fusion.weight(ch), fusion.weight(ch, cross=True)
        if not (w_same or w_cross):
            continue
        std = float(s.std())
        if std <= 1e-9:
            continue
        z = (s - s.mean()) / std
        total += np.where(cross, w_cross, w_same) * z
    return total


def _best_sentences(index: Index, rows: np.ndarray, channel: str, q: np.ndarray) -> np.ndarray | None:
    """The best sentence cosine inside each candidate chunk (NaN for a chunk without sentences)."""
    sv = index.sentence_vectors.get(channel)
    if sv is None or not len(sv):
        return None
    lists = [index.chunk_sentences[int(r)] for r in rows]
    lengths = np.array([len(x) for x in lists])
    out = np.full(len(rows), np.nan, np.float32)
    if not lengths.any():
        return out
    flat = np.fromiter((s for x in lists for s in x), dtype=np.int64, count=int(lengths.sum()))
    sims = sv[flat] @ q
    has = lengths > 0
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[has]
    out[has] = np.maximum.reduceat(sims, starts)
    return out


def fold_editions(index: Index, hits: Sequence[Hit], threshold: float, prefer_language: str = "") -> list[Hit]:
    """Show a passage found in several editions of one issue once, naming the other editions."""
    if not index.vectors or len(hits) < 2:
        return list(hits)
    row_of = {c.chunk_id: i for i, c in enumerate(index.chunks)}
    return _fold(index, hits, np.array([row_of[h.chunk.chunk_id] for h in hits]), threshold, prefer_language)


def _fold(index: Index, hits: Sequence[Hit], rows: np.ndarray, threshold: float, prefer_language: str) -> list[Hit]:
    """`fold_editions` for hits whose chunk rows are known: one pass, comparing only hits of one edition key.

    A hit joins the first earlier group of its key whose lead passage it matches (cosine >= threshold) and
    that holds no passage of its own document; documents without a shared key (distinct title or issue, no
    `edition_of`) are never folded.
    """
    if not index.vectors or len(hits) < 2:
        return list(hits)
    vectors = index.vectors[next(iter(index.vectors))]
    groups: list[list[int]] = []  # positions in `hits`
    by_key: dict[str, list[list[int]]] = {}
    for i, hit in enumerate(hits):
        key = _edition_key(index, hit.chunk)
        for group in by_key.get(key, []) if key else []:
            lead = group[0]
            if all(hits[j].chunk.doc_id != hit.chunk.doc_id for j in group) and (
                float(vectors[rows[lead]] @ vectors[rows[i]]) >= threshold
            ):
                group.append(i)
                break
        else:
            groups.append([i])
            if key:
                by_key.setdefault(key, []).append(groups[-1])
    kept: list[Hit] = []
    for group in groups:
        members = [hits[j] for j in group]
        best = members[0]
        if prefer_language:
            same = [h for h in members if base(h.chunk.language) == base(prefer_language)]
            if same:
                best = same[0]
        others = tuple(h.chunk.doc_id for h in members if h is not best)
        kept.append(Hit(chunk=best.chunk, score=members[0].score, channels=best.channels, also_in=others))
    return kept


def _edition_key(index: Index, chunk: Chunk) -> str:
    doc = index.documents.get(chunk.doc_id)
    if doc is None:
        return ""
    return doc.meta.edition_of or f"{doc.meta.title}|{doc.meta.issue}"
