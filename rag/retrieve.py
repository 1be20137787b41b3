"""Hybrid retrieval: dense channels + BM25, z-scored and fused, re-scored per sentence, editions folded.

Tuned on the XQuAD dev split only (docs/bench-xquad.md has the log): a weighted sum of per-query z-scores over
the candidates beat min-max, max and reciprocal-rank fusion, and mixing each dense channel's chunk cosine with
its best sentence cosine (the second stage) beat adding a separate sentence bonus on top.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rag import segments
from rag.lang import base, detect
from rag.lexical import top_k
from rag.store import Index
from rag.types import Hit

log = logging.getLogger(__name__)

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
    """Boolean mask of chunk rows that pass the filters, or None when nothing is filtered.

    Built from per-chunk arrays precomputed once per opened index (`search_state`): a language filter alone
    is a stored mask; the others test each document (or each distinct section name) once, not each chunk.
    """
    if not filters:
        return None
    st = search_state(index)
    if filters.language and not (
        filters.issue or filters.date_from or filters.date_to or filters.doc_ids or filters.exclude
    ):
        mask = st.language_mask(base(filters.language))
    else:
        ok = np.array(
            [_doc_passes(index.documents[d].meta, index.documents[d].language, d, filters) for d in st.doc_ids],
            dtype=bool,
        )
        mask = np.append(ok, False)[st.chunk_doc]  # (-1: a row of a tombstoned document, never allowed)
    if filters.section:
        section = filters.section.lower()
        ok_sections = np.array([section in name for name in st.sections], dtype=bool)
        mask = mask & ok_sections[st.chunk_section]
    return mask


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
    engine = getattr(index, "engine", None)
    if engine is not None:  # vectors in a search engine (rag.backend): it finds the candidates
        return list(engine.search(index, query, query_vectors, fusion, filters, k, prefer_language))
    n = len(index.chunks)
    if n == 0:
        return []
    filtered = allowed_rows(index, filters)
    mask = filtered
    if index.live is not None:  # rows of deleted or replaced documents, still in their segments
        mask = index.live if mask is None else mask & index.live
    if mask is not None and not mask.any():
        return []
    language = base(prefer_language or detect(query))
    active = [ch for ch in query_vectors if fusion.weight(ch) or fusion.weight(ch, cross=True)]
    candidates: set[int] = set()
    for ch in active:  # each dense channel's own top candidates (exact in flat segments, HNSW in big ones)
        candidates.update(dense_top(index, ch, query_vectors[ch], fusion.candidates, mask))
    lex: np.ndarray | _Sparse | None = None
    if index.lexical is not None and (fusion.weight("bm25") or fusion.weight("bm25", cross=True)):
        if filtered is None:  # BM25 keeps only its top matches (deleted rows never score; a filter needs them all)
            lex = _top_sparse(index.lexical, query, language, max(fusion.candidates * 5, 200), fusion.candidates)
        else:
            lex = index.lexical.scores(query, language=language)
        if isinstance(lex, _Sparse):
            candidates.update(lex.best)
        else:
            candidates.update(r for r in _top(lex, mask, fusion.candidates) if lex[r] > 0)
    rows = np.array(sorted(candidates), dtype=np.int64)
    if mask is not None:
        rows = rows[mask[rows]]
    if not len(rows):
        return []
    # Cosines of the candidates only: the fused scores never need the rest of the archive.
    per_channel = {ch: index.vectors[ch][rows] @ query_vectors[ch] for ch in active}
    if lex is not None:
        per_channel["bm25"] = lex.at(rows) if isinstance(lex, _Sparse) else lex[rows]
    fused = rescore(index, rows, per_channel, query_vectors, active, fusion, language)
    return ranked_hits(index, rows, fused, per_channel, fusion, prefer_language, k)


def rescore(
    index: Index,
    rows: np.ndarray,
    per_channel: dict[str, np.ndarray],
    query_vectors: Mapping[str, np.ndarray],
    active: Sequence[str],
    fusion: FusionSettings,
    language: str,
) -> np.ndarray:
    """The second stage every backend shares: each dense channel mixed with its best sentence's cosine (added to
    `per_channel` as `<channel>_sentence`), cross-language offsets, then the fusion of the channels."""
    fused_inputs = dict(per_channel)
    if fusion.rerank:
        for ch in active:
            best = _best_sentences(index, rows, ch, query_vectors[ch])
            if best is not None:
                per_channel[f"{ch}_sentence"] = best
                has = ~np.isnan(best)
                a = fusion.sentence_weight
                fused_inputs[ch] = np.where(has, (1 - a) * per_channel[ch] + a * np.nan_to_num(best), per_channel[ch])
    cross = search_state(index).chunk_language[rows] != language
    if cross.any():
        for ch, offset in fusion.cross_offsets.items():
            if ch in fused_inputs and offset:
                fused_inputs[ch] = fused_inputs[ch] + offset * cross
    return _fuse(fused_inputs, fusion, cross)


def ranked_hits(
    index: Index,
    rows: np.ndarray,
    fused: np.ndarray,
    per_channel: dict[str, np.ndarray],
    fusion: FusionSettings,
    prefer_language: str,
    k: int,
) -> list[Hit]:
    """Hits best first, editions of one passage folded together, the first `k` (built only for those)."""
    order = np.argsort(-fused, kind="stable")
    ranked = rows[order]
    docs = _doc_ids(index, ranked)
    hits: list[Hit] = []
    for shown, group in _fold_groups(index, ranked, docs, fusion.fold_threshold, prefer_language)[:k]:
        i = order[shown]  # the shown passage's position in `rows`, `fused` and the channel arrays
        hits.append(
            Hit(
                chunk=index.chunks[ranked[shown]],
                score=float(fused[order[group[0]]]),  # the group's lead ranks it
                channels={ch: float(v[i]) for ch, v in per_channel.items() if not np.isnan(v[i])},
                also_in=tuple(docs[j] for j in group if j != shown),
            )
        )
    return hits


def dense_top(index: Index, channel: str, q: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[int]:
    """Rows of the k chunks nearest `q` in one dense channel among those `mask` allows: each segment's own
    k best (exact or HNSW, see `rag.segments`), then the k best of those."""
    if not index.parts:  # an index of format 3: one FAISS structure over all rows
        return search_state(index).dense(index, channel).top(q, k, mask, search_state(index))
    rows, scores = [], []
    for p in index.parts:
        n = len(p.segment.chunks)
        sub = None if mask is None else mask[p.chunk_offset : p.chunk_offset + n]
        if sub is not None and not sub.any():
            continue
        r, sc = p.segment.top(channel, q, k, sub)
        rows.append(r + p.chunk_offset)
        scores.append(sc)
    if not rows:
        return []
    all_rows, all_scores = np.concatenate(rows), np.concatenate(scores)
    order = np.argsort(-all_scores, kind="stable")[:k]
    return [int(r) for r in all_rows[order]]


def _top(scores: np.ndarray, mask: np.ndarray | None, k: int) -> list[int]:
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(r) for r in top if np.isfinite(scores[r])]


def _top_scores(lexical: Any, query: str, language: str, k: int) -> np.ndarray:
    """`_keep_top(lexical.scores(query), k)`, from the lexical index's own top k when it has one (rag.lexical
    reads only its segments' best rows, not an array over every row)."""
    if not hasattr(lexical, "top"):
        return _keep_top(lexical.scores(query, language=language), k)
    return _as_array(*lexical.top(query, k, language=language), len(lexical))


@dataclass(frozen=True)
class _Sparse:
    """BM25's kept top rows without an array over every row: their scores (`at`, 0 elsewhere, as `_top_scores`)
    and the `best` rows that join the candidates (`_top(_top_scores(...), mask, k)`'s positive rows)."""

    rows: np.ndarray  # sorted
    scores: np.ndarray
    best: list[int]

    def at(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros(len(rows), self.scores.dtype)
        if len(self.rows):
            i = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
            found = self.rows[i] == rows
            out[found] = self.scores[i[found]]
        return out


def _top_sparse(lexical: Any, query: str, language: str, keep: int, k: int) -> np.ndarray | _Sparse:
    """`_top_scores(lexical, query, language, keep)` and its k best rows, without an array over every row when
    the lexical index has its own top k. Those rows are the k best, unless the k-th and the next score tie: then
    which rows `_top`'s partition picks is its own, so the array is made and `_top` picks them, as before."""
    if not hasattr(lexical, "top"):
        return _top_scores(lexical, query, language, keep)
    rows, scores = lexical.top(query, keep, language=language)  # best first, all positive, all live
    if 0 < k < len(rows) and scores[k - 1] == scores[k]:
        return _as_array(rows, scores, len(lexical))
    order = np.argsort(rows)
    return _Sparse(rows[order], scores[order], [int(r) for r in rows[:k]])


def _keep_top(scores: np.ndarray, k: int) -> np.ndarray:
    """`scores` with all but its k best positive entries set to 0 (ties broken by row, as BM25's search)."""
    return _as_array(*top_k(np.arange(len(scores)), scores, k), len(scores))


def _as_array(rows: np.ndarray, scores: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, scores.dtype)
    out[rows] = scores
    return out


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
    row_of = row_map(index)
    rows = np.array([row_of[h.chunk.chunk_id] for h in hits])
    groups = _fold_groups(index, rows, [h.chunk.doc_id for h in hits], threshold, prefer_language)
    return [
        Hit(
            chunk=hits[shown].chunk,
            score=hits[group[0]].score,
            channels=hits[shown].channels,
            also_in=tuple(hits[j].chunk.doc_id for j in group if j != shown),
        )
        for shown, group in groups
    ]


def _fold_groups(
    index: Index, rows: np.ndarray, docs: Sequence[str], threshold: float, prefer_language: str
) -> list[tuple[int, list[int]]]:
    """The folding of ranked chunk `rows` (of documents `docs`), as (position shown, positions of the group, lead
    first) per group.

    A passage joins the first earlier group of its edition key whose lead passage it matches (cosine >=
    threshold) and that holds no passage of its own document; documents of different editions
    (`Index.edition_keys`: no shared `edition_of`, title and issue, or file name but for a language tag) are never
    folded. A group shows its first passage in `prefer_language`, else its lead. The passages of one key are
    compared in one matrix product; languages come from the search state, not the chunks.
    """
    if not index.vectors or len(rows) < 2:
        return [(i, [i]) for i in range(len(rows))]
    keys = [index.edition_keys.get(doc, "") for doc in docs]
    positions: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key:
            positions.setdefault(key, []).append(i)
    vectors = index.vectors[next(iter(index.vectors))]
    similar: dict[str, np.ndarray] = {}  # per edition key: which of its passages match which
    place: dict[int, int] = {}  # position in `rows` -> position among its key's passages
    for key, at in positions.items():
        if len(at) > 1:
            v = np.asarray(vectors[rows[at]])
            similar[key] = (v @ v.T) >= threshold
            place.update((i, j) for j, i in enumerate(at))
    groups: list[list[int]] = []
    members: list[set[str]] = []  # each group's documents
    by_key: dict[str, list[int]] = {}  # edition key -> its groups
    for i, (key, doc) in enumerate(zip(keys, docs, strict=True)):
        for g in by_key.get(key, []) if key else []:
            if similar[key][place[groups[g][0]], place[i]] and doc not in members[g]:
                groups[g].append(i)
                members[g].add(doc)
                break
        else:
            groups.append([i])
            members.append({doc})
            if key:
                by_key.setdefault(key, []).append(len(groups) - 1)
    language = search_state(index).chunk_language[rows]
    want = base(prefer_language) if prefer_language else ""
    return [(next((j for j in group if want and language[j] == want), group[0]), group) for group in groups]


def _doc_ids(index: Index, rows: np.ndarray) -> list[str]:
    """The document of each chunk row, from the search state's codes."""
    st = search_state(index)
    return [st.doc_ids[d] if d >= 0 else index.chunks[r].doc_id for d, r in zip(st.chunk_doc[rows], rows, strict=True)]


# ---------------------------------------------------------------- search structures, built once per opened index

# Chosen per segment in rag.segments (the same values serve indexes of format 3, searched as one piece).
FLAT_MAX, EXACT_POOL, HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = (
    segments.FLAT_MAX,
    segments.EXACT_POOL,
    segments.HNSW_M,
    segments.HNSW_EF_CONSTRUCTION,
    segments.HNSW_EF_SEARCH,
)


def row_map(index: Index) -> dict[str, int]:
    """chunk_id → row, built once per opened index (not per question)."""
    return search_state(index).row_of


def search_info(index: Index) -> dict[str, str]:
    """The dense search each channel uses on this index ("flat" or "hnsw M=… efSearch=…"), building it; for a
    segmented index, per segment ("flat×3 + hnsw M=32 efSearch=128×1")."""
    if index.parts:
        kinds: dict[str, int] = {}
        for p in index.parts:
            kind = p.segment.dense
            kinds[kind] = kinds.get(kind, 0) + 1
        hnsw = f"hnsw M={HNSW_M} efSearch={HNSW_EF_SEARCH}"
        names = {k: hnsw if k == "hnsw" else k for k in kinds}
        if len(index.parts) == 1:
            return {ch: names[next(iter(kinds))] for ch in index.vectors}
        text = " + ".join(f"{names[k]}×{n}" for k, n in sorted(kinds.items()))
        return {ch: text for ch in index.vectors}
    st = search_state(index)
    return {ch: st.dense(index, ch).describe() for ch in index.vectors}


def search_state(index: Index) -> SearchState:
    """The per-index arrays and FAISS structures search uses, cached on the Index object."""
    st = index.__dict__.get("_search_state")
    if st is None or st.n != len(index.chunks):
        with _STATE_LOCK:
            st = index.__dict__.get("_search_state")
            if st is None or st.n != len(index.chunks):
                st = SearchState.of(index)
                index.__dict__["_search_state"] = st
    return st


_STATE_LOCK = threading.Lock()


@dataclass
class SearchState:
    """Precomputed per-chunk arrays: row map, languages, documents and sections as integer codes."""

    n: int
    row_of: dict[str, int]
    chunk_language: np.ndarray  # base language per chunk ("en" / "zh")
    doc_ids: list[str]
    chunk_doc: np.ndarray  # position in doc_ids per chunk
    sections: list[str]  # distinct section names, lower-cased
    chunk_section: np.ndarray  # position in sections per chunk
    _masks: dict[str, np.ndarray] = field(default_factory=dict)
    _dense: dict[str, DenseSearch] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, index: Index) -> SearchState:
        if index.parts:
            return cls._of_segments(index)
        doc_ids = sorted(index.documents)
        doc_pos = {d: i for i, d in enumerate(doc_ids)}
        section_pos: dict[str, int] = {}
        chunk_section = np.array(
            [section_pos.setdefault(c.section.lower(), len(section_pos)) for c in index.chunks], dtype=np.int32
        )
        return cls(
            n=len(index.chunks),
            row_of=(
                {c.chunk_id: i for i, c in enumerate(index.chunks)}
                if index.live is None
                else {index.chunks[i].chunk_id: int(i) for i in np.flatnonzero(index.live)}
            ),
            chunk_language=np.array([base(c.language) for c in index.chunks], dtype="<U8"),
            doc_ids=doc_ids,
            chunk_doc=np.array([doc_pos.get(c.doc_id, -1) for c in index.chunks], dtype=np.int64),
            sections=list(section_pos),
            chunk_section=chunk_section,
        )

    @classmethod
    def _of_segments(cls, index: Index) -> SearchState:
        """The same arrays joined from each segment's own (computed once per segment, not per version)."""
        doc_ids = sorted(index.documents)
        doc_pos = {d: i for i, d in enumerate(doc_ids)}
        section_pos: dict[str, int] = {}
        languages, chunk_doc, chunk_section = [], [], []
        row_of: dict[str, int] = {}
        for p in index.parts:
            codes = p.segment.chunk_codes()
            # documents tombstoned in this segment map to -1 (their rows are not live: never searched)
            local_docs = np.array([-1 if d in p.deleted else doc_pos.get(d, -1) for d in codes.doc_ids], np.int64)
            local_sections = np.array([section_pos.setdefault(x, len(section_pos)) for x in codes.sections], np.int64)
            languages.append(codes.language)
            chunk_doc.append(local_docs[codes.chunk_doc] if len(codes.chunk_doc) else codes.chunk_doc)
            chunk_section.append(
                local_sections[codes.chunk_section] if len(codes.chunk_section) else codes.chunk_section
            )
            off = p.chunk_offset
            if p.live is None:
                row_of.update(zip(codes.chunk_ids, range(off, off + len(codes.chunk_ids)), strict=True))
            else:
                row_of.update((codes.chunk_ids[i], off + int(i)) for i in np.flatnonzero(p.live))
        return cls(
            n=len(index.chunks),
            row_of=row_of,
            chunk_language=np.concatenate(languages) if languages else np.zeros(0, "<U8"),
            doc_ids=doc_ids,
            chunk_doc=np.concatenate(chunk_doc) if chunk_doc else np.zeros(0, np.int64),
            sections=list(section_pos),
            chunk_section=np.concatenate(chunk_section) if chunk_section else np.zeros(0, np.int64),
        )

    def language_mask(self, language: str) -> np.ndarray:
        mask = self._masks.get(language)
        if mask is None:
            mask = self._masks[language] = self.chunk_language == language
        return mask

    def dense(self, index: Index, channel: str) -> DenseSearch:
        ds = self._dense.get(channel)
        if ds is None:
            with self._lock:
                ds = self._dense.get(channel)
                if ds is None:
                    ds = self._dense[channel] = DenseSearch.of(index, channel)
        return ds


@dataclass
class DenseSearch:
    """One channel's nearest-neighbour search: FAISS flat (exact) up to FLAT_MAX vectors, HNSW above."""

    kind: str
    vectors: np.ndarray
    faiss_index: Any

    @classmethod
    def of(cls, index: Index, channel: str) -> DenseSearch:
        vectors = index.vectors[channel]
        if len(vectors) <= FLAT_MAX:
            flat = index.faiss.get(channel)
            if flat is None or flat.ntotal != len(vectors):
                from rag.store import _flat_index

                flat = _flat_index(vectors)
            return cls("flat", vectors, flat)
        return cls("hnsw", vectors, _hnsw(index, channel, vectors))

    def describe(self) -> str:
        return "flat" if self.kind == "flat" else f"hnsw M={HNSW_M} efSearch={HNSW_EF_SEARCH}"

    def top(self, q: np.ndarray, k: int, mask: np.ndarray | None, st: SearchState) -> list[int]:
        """Rows of the k best vectors for `q` among those `mask` allows (all when None).

        Exact on a flat channel (at most FLAT_MAX vectors); an HNSW channel searches a filtered pool of at most
        EXACT_POOL vectors exactly (FAISS flat with a selector) and a larger one through the graph.
        """
        import faiss

        n = len(self.vectors)
        k = min(k, n)
        if k <= 0:
            return []
        q2 = np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1)
        # One question gains nothing from an OpenMP team, whose idle threads spin on the cores the encoders
        # need (the setting is per calling thread, so it is made on every call).
        faiss.omp_set_num_threads(1)
        if mask is None:
            _, ids = self.faiss_index.search(q2, k)
        else:
            allowed = int(mask.sum())
            if not allowed:
                return []
            bits = np.packbits(mask, bitorder="little")  # must outlive the search: the selector only points to it
            sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            if self.kind == "flat" or allowed <= EXACT_POOL:
                _, ids = self._flat().search(q2, min(k, allowed), params=faiss.SearchParameters(sel=sel))
            else:
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(HNSW_EF_SEARCH, k))
                _, ids = self.faiss_index.search(q2, k, params=params)
        return [int(r) for r in ids[0] if r >= 0]

    def _flat(self) -> Any:
        """The exact index: the flat one, or the HNSW graph's own vector storage."""
        import faiss

        return self.faiss_index if self.kind == "flat" else faiss.downcast_index(self.faiss_index.storage)


def _hnsw(index: Index, channel: str, vectors: np.ndarray) -> Any:
    """An HNSW graph over `vectors`, read from the index folder when one was built for the same vectors."""
    import faiss

    digest = hashlib.blake2b(np.ascontiguousarray(vectors).data, digest_size=8).hexdigest()
    stem = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in channel)
    path = index.folder / f"search-{stem}-hnsw{HNSW_M}-{len(vectors)}-{digest}.faiss"
    if path.exists():
        try:
            hnsw = faiss.read_index(str(path))
            if hnsw.ntotal == len(vectors):
                hnsw.hnsw.efSearch = HNSW_EF_SEARCH
                return hnsw
        except RuntimeError:
            log.warning("unreadable %s; rebuilding it", path)
    hnsw = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    hnsw.add(np.ascontiguousarray(vectors, dtype=np.float32))
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    try:  # derived data kept beside the vectors; a folder that cannot be written just rebuilds it next time
        for stale in index.folder.glob(f"search-{stem}-hnsw*.faiss"):
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        faiss.write_index(hnsw, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep the HNSW graph for %s in %s: %s", channel, index.folder, exc)
    return hnsw
