"""What the answer model sees: one feature row per candidate sentence of the retrieved passages.

Every feature is something the pipeline already knows or can read off the question and the sentence:
cosines per encoder, coverage of the question's concepts (across languages, through CC-CEDICT, weighted by
their idf in the archive), the most specific concept a sentence or passage leaves out, the passage's rank and
BM25 score, the sentence's language, and whether the sentence carries the kind of fact the question asks
for (`rag.verify`). Sentence length is left out on purpose: newsletters answer in list items and table rows
that prose-trained weights would read as too short to answer. The model's weights, not rules, decide what each is worth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from rag import cedict, lexical
from rag.align import counterpart
from rag.focus import focus, named_in
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
    "s_ctx_cov",
    "s_missing",
    "p_missing",
    "p_bm25",
    "rank",
    "same_language",
    "type_ok",
    "type_missing",
    "numbers_missing",
    "future_missing",
    "focus_missing",
    "focus_rare",
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
    before: list[int | None] = []  # the sentence before each candidate in its passage
    seen: set[int] = set()
    for h, hit in enumerate(hits):
        doc = index.documents[hit.chunk.doc_id]
        in_passage = index.chunk_sentences[row_map(index)[hit.chunk.chunk_id]]
        for i, r in enumerate(in_passage):
            _d, a, b = index.sentences[r]
            if r in seen or r in exclude or _is_heading(doc.text[a:b], hit):
                continue
            seen.add(r)
            rows.append(Candidate(r, h))
            before.append(in_passage[i - 1] if i else None)
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
    texts, langs = zip(*(read_as(index, c.row, base(language)) for c in rows), strict=True)
    cov = np.array([coverage(t, lang) for t, lang in zip(texts, langs, strict=True)])
    passage_cov = {h: coverage(hit.chunk.text, base(hit.chunk.language)) for h, hit in enumerate(hits)}
    x[:, col["s_cov"]] = cov
    x[:, col["s_cov_gap"]] = cov - cov.max()
    x[:, col["p_cov"]] = [passage_cov[c.hit] for c in rows]
    read = {c.row: t for c, t in zip(rows, texts, strict=True)}  # the sentence before is mostly a candidate too
    lead = ["" if r is None else read[r] if r in read else read_as(index, r, base(language))[0] for r in before]
    x[:, col["s_ctx_cov"]] = [
        coverage("\n".join((hits[c.hit].chunk.heading, p, t)), lang)
        for c, p, t, lang in zip(rows, lead, texts, langs, strict=True)
    ]
    x[:, col["s_missing"]] = [coverage.missing(t, lang) for t, lang in zip(texts, langs, strict=True)]
    passage_missing = {h: coverage.missing(hit.chunk.text, base(hit.chunk.language)) for h, hit in enumerate(hits)}
    x[:, col["p_missing"]] = [passage_missing[c.hit] for c in rows]
    x[:, col["p_bm25"]] = [hits[c.hit].channels.get("bm25", 0.0) for c in rows]
    x[:, col["rank"]] = [math.log1p(c.hit) for c in rows]
    x[:, col["same_language"]] = [float(_language(index, c.row) == base(language)) for c in rows]
    asked_for = focus(query)
    x[:, col["focus_missing"]] = [float(bool(asked_for.word) and not named_in(asked_for, t)) for t in texts]
    # naming the focus tells a candidate apart when few others do ("Which city …": the one sentence naming Hangzhou)
    names_it = (x[:, col["focus_missing"]] == 0.0) & bool(asked_for.word)
    x[:, col["focus_rare"]] = names_it * (1.0 - names_it.mean())
    for i, c in enumerate(rows):
        s = signals(asked, _sentence_text(index, c.row), _with_meta(index, hits[c.hit]))
        x[i, col["type_ok"]] = s.type_ok
        x[i, col["type_missing"]] = s.type_missing
        x[i, col["numbers_missing"]] = s.numbers_missing
        x[i, col["future_missing"]] = s.future_missing
    top = {**hits[0].channels, "cov": passage_cov[0], "missing": passage_missing[0]}
    return Candidates(tuple(rows), x, asked, top)


def _with_meta(index: Index, hit: Hit) -> str:
    """A passage read with its newsletter's title, issue and period: "… in the week covered by issue 665"
    names the issue, not the passage."""
    meta = index.documents[hit.chunk.doc_id].meta
    return "\n".join((hit.chunk.text, meta.title, meta.issue, meta.period))


def read_as(index: Index, row: int, language: str) -> tuple[str, str]:
    """A candidate sentence as the coverage features read it, with its language: a sentence of the other
    language's edition is read as its counterpart in the question's edition when the archive holds one (that
    edition's own words: CC-CEDICT's translations are broad, "president" also matches 主席 and 会长), else as
    itself, through the dictionary."""
    own = _language(index, row)
    if own != language and (aligned := counterpart(index, row, language)) is not None:
        return aligned.quote, base(aligned.language)
    return _sentence_text(index, row), own


def _language(index: Index, row: int) -> str:
    return base(index.documents[index.sentences[row][0]].language)


def _sentence_text(index: Index, row: int) -> str:
    doc_id, a, b = index.sentences[row]
    return index.documents[doc_id].text[a:b]


def _is_heading(sentence: str, hit: Hit) -> bool:
    """Article headings help retrieval but are no answer: they state a topic, not a fact."""
    return bool(hit.chunk.heading) and sentence.strip() == hit.chunk.heading.strip()


class Coverage:
    """How much of the question a text expresses, read as concepts over the text's language (translated
    through CC-CEDICT when the languages differ), exactly as the BM25 channel reads it.

    Coverage weighs each concept by its idf among the archive's passages, so "the" of a newsletter and a rare
    name weigh what they weigh there. What a text leaves out (`missing`) weighs each concept also by how
    specific it is in the language at large (`general_weight`): the archive's idf alone misleads in a small
    archive, where every word it lacks ("held", "hosts") weighs most.
    """

    def __init__(self, index: Index, query: str) -> None:
        self.index = index
        self.query = query
        self._concepts: dict[str, list[tuple[tuple[str, float], ...]]] = {}
        self._idf: dict[str, np.ndarray] = {}
        self._specific: dict[str, np.ndarray] = {}

    def __call__(self, text: str, language: str) -> float:
        concepts, idf, _specific = self._read(language)
        if not concepts or idf.sum() <= 0:
            return 0.0
        matched = self._matched(concepts, text, language)
        return float((idf * matched).sum() / idf.sum())

    def missing(self, text: str, language: str) -> float:
        """How specific the most specific question concept the text leaves out is, relative to the question's
        most specific concept (0: nothing missing, 1: the most specific one is missing): "Which hotel …" read
        against a passage that names the seminar's city but no hotel."""
        concepts, _idf, specific = self._read(language)
        if not concepts or specific.max() <= 0:
            return 0.0
        matched = self._matched(concepts, text, language)
        return float((specific * (1.0 - matched)).max() / specific.max())

    def _read(self, language: str) -> tuple[list[tuple[tuple[str, float], ...]], np.ndarray, np.ndarray]:
        language = base(language)
        if language not in self._concepts:
            found = [c for c in lexical.concepts(self.query, language, _LEXICAL) if not _asks(c)]
            idf = np.array([self._concept_idf(c, language) for c in found])
            general = np.array(
                [min(general_weight(t, language) for t, w in c if w >= _BEST_TRANSLATION) for c in found]
            )
            self._concepts[language], self._idf[language], self._specific[language] = found, idf, idf * general
        return self._concepts[language], self._idf[language], self._specific[language]

    @staticmethod
    def _matched(concepts: list[tuple[tuple[str, float], ...]], text: str, language: str) -> np.ndarray:
        tokens = _tokens(text, base(language))
        return np.array([max((w for t, w in c if t in tokens), default=0.0) for c in concepts])

    def _concept_idf(self, concept: tuple[tuple[str, float], ...], language: str) -> float:
        if self.index.lexical is None:
            return 1.0
        counts = [self.index.lexical.document_frequency(t, language) for t, _w in concept]
        n = max((total for _df, total in counts), default=0)
        if not n:
            return 1.0
        df = max(df for df, _total in counts)
        return math.log1p((n - df + 0.5) / (df + 0.5))


def question_word(token: str) -> bool:
    """A Chinese token that asks rather than names: an interrogative joined by jieba to what follows it
    (几名 "how many people", 哪家 "which (business)", 哪一年, 何时, 多少年) and unknown to CC-CEDICT as a word.
    It is what the answer fills in, never a concept a passage should contain; words that only start like
    one (几乎 "almost", 几何 "geometry") are CC-CEDICT headwords and stay concepts."""
    return token.startswith(_INTERROGATIVES) and len(token) > 1 and not cedict.has(token)


def _asks(concept: tuple[tuple[str, float], ...]) -> bool:
    return len(concept) == 1 and question_word(concept[0][0])


_INTERROGATIVES = ("哪", "几", "何", "谁", "多少", "什么")  # Chinese interrogative morphemes (a closed class)
_LEXICAL = lexical.Settings()
_BEST_TRANSLATION = 0.9  # translations within 10% of CC-CEDICT's best gloss count as the concept's word
_RAREST_ZIPF = 8.0  # wordfreq's Zipf scale: 8 is "the", 0 a word never seen


def general_weight(token: str, language: str) -> float:
    """How specific an index token is in the language at large: 8 minus its Zipf frequency (wordfreq), so
    "the" weighs ~0.3, "city" ~2.4, "hotel" ~3, "seminar" ~4.2, a name never seen 8. The same in every
    archive, unlike the archive's own idf, which in a small archive makes every word it lacks ("held") the
    heaviest of the question."""
    if base(language) == "zh" and not token.isascii():
        freq = _frequencies("zh").get(token, 0.0)
    else:
        freq = _frequencies("en").get(token, 0.0)  # English stems; Latin words in Chinese text too
    zipf = math.log10(freq) + 9 if freq > 0 else 0.0
    return max(0.25, _RAREST_ZIPF - zipf)


@lru_cache(maxsize=2)
def _frequencies(language: str) -> dict[str, float]:
    """wordfreq's word frequencies keyed like index tokens: English by stem (the most frequent word of each
    stem), Chinese by word. Built once per process (about a second for English)."""
    import wordfreq

    words = wordfreq.get_frequency_dict(language)
    if language == "zh":
        return {w: f for w, f in words.items() if f >= 1e-8}
    out: dict[str, float] = {}
    for w, f in words.items():
        if f >= 1e-7 and w.isalpha():
            k = lexical.stem(w)
            if f > out.get(k, 0.0):
                out[k] = f
    return out


@lru_cache(maxsize=8192)
def _tokens(text: str, language: str) -> frozenset[str]:
    return frozenset(lexical.analyze(to_simplified(text), language))
