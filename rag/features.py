"""What the answer model sees: one feature row per candidate sentence of the retrieved passages.

Every feature is something the pipeline already knows or can read off the question and the sentence, on
scales that mean the same in any archive: cosines per encoder, coverage of the question's concepts (across
languages, through CC-CEDICT, weighted by the archive's own document frequencies), the passage's rank and
channel scores, the sentence's language and length, and whether the sentence carries the kind of fact the
question asks for (`rag.verify`). The model's weights, not rules, decide what each is worth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag import lexical
from rag.chunk import units
from rag.lang import base, to_simplified
from rag.retrieve import row_map
from rag.store import Index
from rag.types import Hit
from rag.verify import Need, need, signals

DENSE = ("use", "e5")  # the encoders the shipped model was trained with; others are read as their mean

SENTENCE_FEATURES: tuple[str, ...] = (
    *(f"s_cos_{ch}" for ch in DENSE),
    *(f"s_gap_{ch}" for ch in DENSE),
    *(f"p_cos_{ch}" for ch in DENSE),
    "s_cov",
    "s_cov_gap",
    "p_cov",
    "p_bm25",
    "rank",
    "same_language",
    "log_units",
    "type_ok",
    "type_missing",
    "numbers_missing",
    "future_missing",
    "serial_conflict",
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A sentence of a retrieved passage that might answer the question."""

    row: int  # sentence row in the index
    hit: int  # position of its passage in the hits


@dataclass(frozen=True, slots=True)
class Candidates:
    """The candidate sentences of one question, with one feature row each (columns: SENTENCE_FEATURES)."""

    items: tuple[Candidate, ...]
    features: np.ndarray  # (len(items), len(SENTENCE_FEATURES)), NaN where a channel is missing
    need: Need
    top_hit: dict[str, float]  # the first passage's channel scores and its coverage ("cov")


def candidates(
    index: Index,
    hits: Sequence[Hit],
    query: str,
    language: str,
    query_vectors: Mapping[str, np.ndarray],
    exclude: frozenset[int] = frozenset(),
) -> Candidates:
    """Every sentence of the retrieved passages once (headings and `exclude`d rows left out), with its features.

    `query` is the question as matched (Traditional converted to Simplified); `language` the question's.
    """
    asked = need(query)
    rows: list[Candidate] = []
    seen: set[int] = set()
    for h, hit in enumerate(hits):
        doc = index.documents[hit.chunk.doc_id]
        for r in index.chunk_sentences[row_map(index)[hit.chunk.chunk_id]]:
            _d, a, b = index.sentences[r]
            if r in seen or r in exclude or _is_heading(doc.text[a:b], hit):
                continue
            seen.add(r)
            rows.append(Candidate(r, h))
    x = np.full((len(rows), len(SENTENCE_FEATURES)), np.nan, np.float64)
    if not rows:
        return Candidates((), x, asked, {})
    col = {name: i for i, name in enumerate(SENTENCE_FEATURES)}
    sentence_rows = np.array([c.row for c in rows])
    for ch in DENSE:
        if ch in query_vectors and ch in index.sentence_vectors:
            cos = index.sentence_vectors[ch][sentence_rows] @ query_vectors[ch]
            x[:, col[f"s_cos_{ch}"]] = cos
            x[:, col[f"s_gap_{ch}"]] = cos - cos.max()
            x[:, col[f"p_cos_{ch}"]] = [hits[c.hit].channels.get(ch, np.nan) for c in rows]
    coverage = Coverage(index, query)
    texts = [_sentence_text(index, c.row) for c in rows]
    langs = [base(index.documents[index.sentences[c.row][0]].language) for c in rows]
    cov = np.array([coverage(t, lang) for t, lang in zip(texts, langs, strict=True)])
    passage_cov = {h: coverage(hit.chunk.text, base(hit.chunk.language)) for h, hit in enumerate(hits)}
    x[:, col["s_cov"]] = cov
    x[:, col["s_cov_gap"]] = cov - cov.max()
    x[:, col["p_cov"]] = [passage_cov[c.hit] for c in rows]
    x[:, col["p_bm25"]] = [hits[c.hit].channels.get("bm25", 0.0) for c in rows]
    x[:, col["rank"]] = [math.log1p(c.hit) for c in rows]
    x[:, col["same_language"]] = [float(lang == base(language)) for lang in langs]
    x[:, col["log_units"]] = [math.log1p(units(t)) for t in texts]
    for i, (c, text) in enumerate(zip(rows, texts, strict=True)):
        s = signals(asked, text, hits[c.hit].chunk.text)
        x[i, col["type_ok"]] = s.type_ok
        x[i, col["type_missing"]] = s.type_missing
        x[i, col["numbers_missing"]] = s.numbers_missing
        x[i, col["future_missing"]] = s.future_missing
        x[i, col["serial_conflict"]] = s.serial_conflict
    top = {**hits[0].channels, "cov": passage_cov[0]}
    return Candidates(tuple(rows), x, asked, top)


def _sentence_text(index: Index, row: int) -> str:
    doc_id, a, b = index.sentences[row]
    return index.documents[doc_id].text[a:b]


def _is_heading(sentence: str, hit: Hit) -> bool:
    """Article headings help retrieval but are no answer: they state a topic, not a fact."""
    return bool(hit.chunk.heading) and sentence.strip() == hit.chunk.heading.strip()


class Coverage:
    """Share of the question's concepts a text expresses, each weighted by its idf in the archive.

    The question is read as concepts over the text's language (translated through CC-CEDICT when the
    languages differ), exactly as the BM25 channel reads it; document frequencies come from the archive's own
    passage index, so "the" of a newsletter and a rare name weigh what they weigh there.
    """

    def __init__(self, index: Index, query: str) -> None:
        self.index = index
        self.query = query
        self._concepts: dict[str, list[tuple[tuple[str, float], ...]]] = {}
        self._idf: dict[str, np.ndarray] = {}

    def __call__(self, text: str, language: str) -> float:
        language = base(language)
        if language not in self._concepts:
            found = lexical.concepts(self.query, language, _LEXICAL)
            self._concepts[language] = found
            self._idf[language] = np.array([self._concept_idf(c, language) for c in found])
        concepts, idf = self._concepts[language], self._idf[language]
        if not concepts or idf.sum() <= 0:
            return 0.0
        tokens = _tokens(text, language)
        matched = np.array([max((w for t, w in c if t in tokens), default=0.0) for c in concepts])
        return float((idf * matched).sum() / idf.sum())

    def _concept_idf(self, concept: tuple[tuple[str, float], ...], language: str) -> float:
        if self.index.lexical is None:
            return 1.0
        counts = [self.index.lexical.document_frequency(t, language) for t, _w in concept]
        n = max((total for _df, total in counts), default=0)
        if not n:
            return 1.0
        df = max(df for df, _total in counts)
        return math.log1p((n - df + 0.5) / (df + 0.5))


_LEXICAL = lexical.Settings()


@lru_cache(maxsize=8192)
def _tokens(text: str, language: str) -> frozenset[str]:
    return frozenset(lexical.analyze(to_simplified(text), language))
