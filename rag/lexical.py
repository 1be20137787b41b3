"""Bilingual BM25: English and Chinese passages, queries expanded across languages through CC-CEDICT."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import sparse

from rag import cedict
from rag.lang import base, detect, to_simplified

FORMAT = 1
LANGUAGES = ("en", "zh")

EN_STOPWORDS = cedict.STOPWORDS | frozenset(
    "whose many much yes may might must shall let like get got per via among upon within without".split()
)
ZH_STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 等 也 都 而 之 其 这 那 这个 那个 这些 那些 这样 有 个 为 以 于 被 把 从 对 将 就
    还 又 并 但 所 由 向 到 给 让 吗 呢 吧 啊 么 什么 哪 哪个 哪些 哪里 哪儿 谁 多少 几 何 如何 为什么 为何 怎么
    怎样 是否 我 你 他 她 它 我们 你们 他们 她们 它们 其中 一个 一种 之一 着 过 得 地 即 则 该 此 各 每 曾 已
    已经 因为 所以 如果 虽然 但是 而且 以及 或者 可以 能 会 被 叫做 称为 哪一 哪一个 什么样""".split()
)

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"[{_HAN}]+|[^{_HAN}]+")
_HAN_CHAR = re.compile(rf"[{_HAN}]")
_EN_WORD = re.compile(r"[a-z0-9]+")
_RAW_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True, slots=True)
class Settings:
    """BM25 and cross-lingual expansion knobs (defaults are the best measured on XQuAD dev)."""

    k1: float = 1.2
    b: float = 0.75
    zh_glosses: int = 4  # English gloss words kept per Chinese query word
    en_heads: int = 4  # Chinese headwords kept per English query word
    structured: bool = True  # translations of one word count as synonyms (Pirkola), not separate terms
    doc_translate: bool = False  # also index each passage's dictionary translation as a second field
    doc_weight: float = 0.5  # weight of that field against the query-side translation


@dataclass(frozen=True, slots=True)
class Concept:
    """One query word and the index terms that express it, with term weights (best = 1)."""

    weight: float
    terms: tuple[tuple[str, float], ...]


# ---------------------------------------------------------------- analysis


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Light suffix stripping so inflected forms and dictionary lemmas meet ("immigrants" → "immigrant")."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix, repl in (("sses", "ss"), ("ies", "y"), ("ied", "y"), ("ss", "ss"), ("us", "us"), ("is", "is")):
        if word.endswith(suffix):
            word = word[: -len(suffix)] + repl
            break
    else:
        if word.endswith("s"):
            word = word[:-1]
    for suffix in ("ations", "ation", "ingly", "ing", "edly", "ed", "ly", "ment", "ness"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "stopped" → "stop"
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]  # "integrate" / "integrated" / "integration" all → "integrat"
    return word[:-1] + "i" if word.endswith("y") and len(word) > 3 else word


def _english_words(text: str) -> list[str]:
    """Lowercased raw content words (no stemming), in order."""
    return [w for w in _RAW_WORD.findall(text.lower()) if w not in EN_STOPWORDS]


def _english(text: str) -> list[str]:
    """English tokens: lowercase alphanumeric runs, stopwords dropped, stemmed."""
    return [stem(w) for w in _EN_WORD.findall(text.lower()) if w not in EN_STOPWORDS]


@lru_cache(maxsize=1)
def _jieba():
    """A private jieba tokenizer, loaded on first use (about a second) and kept."""
    import jieba

    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def _chinese_words(text: str) -> list[str]:
    """Chinese words of a Han-only run, jieba search mode (compounds plus their sub-words)."""
    return [w for w in _jieba().cut_for_search(text) if w not in ZH_STOPWORDS]


def _runs(text: str) -> Iterable[tuple[bool, str]]:
    """Split normalised text into (is_han, run) pieces."""
    text = to_simplified(unicodedata.normalize("NFKC", text))
    for m in _RUNS.finditer(text):
        yield bool(_HAN_CHAR.match(m.group())), m.group()


def analyze(text: str, language: str) -> list[str]:
    """Index tokens: English stems, Simplified jieba words; Latin words and numbers in Chinese text as English."""
    if base(language) not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    out: list[str] = []
    for han, run in _runs(text):
        out += _chinese_words(run) if han else _english(run)
    return out


# ---------------------------------------------------------------- translation


@lru_cache(maxsize=65536)
def _zh_word_to_en(word: str, limit: int) -> tuple[tuple[str, float], ...]:
    """English stems for one Chinese word; unknown words fall back to their longest dictionary parts."""
    glosses = cedict.zh_to_en_weighted(word)[:limit]
    if not glosses and len(word) > 1:
        parts, i = [], 0
        while i < len(word):  # greedy longest match against CEDICT headwords
            j = next((j for j in range(min(len(word), i + 6), i, -1) if cedict.has(word[i:j])), i + 1)
            parts.append(word[i:j])
            i = j
        glosses = tuple(
            (g, w * (1.0 if len(p) > 1 else 0.5)) for p in parts for g, w in cedict.zh_to_en_weighted(p)[:limit]
        )
    best: dict[str, float] = {}
    for gloss, w in glosses:
        for s in _english(gloss):
            best[s] = max(w, best.get(s, 0.0))
    return _normalise(best)


@lru_cache(maxsize=65536)
def _en_word_to_zh(word: str, limit: int) -> tuple[tuple[str, float], ...]:
    """Chinese index terms for one English word or phrase: headwords, analysed as Chinese text."""
    best: dict[str, float] = {}
    for head, w in cedict.en_to_zh_weighted(word, limit):
        for t in _chinese_words(head):
            best[t] = max(w, best.get(t, 0.0))
    return _normalise(best)


def _normalise(weights: dict[str, float]) -> tuple[tuple[str, float], ...]:
    """Scale weights so the best is 1; sort best first."""
    if not weights:
        return ()
    top = max(weights.values())
    return tuple(sorted(((t, w / top) for t, w in weights.items()), key=lambda x: (-x[1], x[0])))


def concepts(text: str, source: str, target: str, settings: Settings) -> list[Concept]:
    """The query as weighted concepts over the target language's index terms."""
    out: list[Concept] = []
    for han, run in _runs(text):
        if not han:
            words = _english_words(run)
            for w in words:
                terms = dict(_en_word_to_zh(w, settings.en_heads)) if target == "zh" and source == "en" else {}
                terms[stem(w)] = 1.0  # Latin names, numbers and acronyms match across languages unchanged
                out.append(Concept(1.0, tuple(terms.items())))
            if target == "zh" and source == "en":
                for n in (2, 3):  # short phrases ("steam engine") translate better than their words
                    for i in range(len(words) - n + 1):
                        if terms := _en_word_to_zh(" ".join(words[i : i + n]), settings.en_heads):
                            out.append(Concept(1.0, terms))
            continue
        for w in _chinese_words(run):
            if target == "zh":
                out.append(Concept(1.0, ((w, 1.0),)))
            elif terms := _zh_word_to_en(w, settings.zh_glosses):
                out.append(Concept(1.0, terms))
    if settings.structured:
        return out
    return [  # each translation its own term, the word's weight shared among them
        Concept(c.weight * w / sum(x for _, x in c.terms), ((t, 1.0),)) for c in out for t, w in c.terms
    ]


def translate_document(text: str, language: str, settings: Settings) -> dict[str, float]:
    """A passage's dictionary translation as fractional term counts in the other language."""
    other = "zh" if language == "en" else "en"
    counts: dict[str, float] = defaultdict(float)
    for c in concepts(text, language, other, Settings(zh_glosses=settings.zh_glosses, en_heads=settings.en_heads)):
        total = sum(w for _, w in c.terms)
        for t, w in c.terms:
            if t.isascii() != (other == "zh"):  # only translated terms; pass-through ones are indexed already
                counts[t] += w / total
    return counts


# ---------------------------------------------------------------- index


@dataclass(frozen=True)
class _Field:
    """One BM25 field of one language's passages: term counts (passages × vocabulary)."""

    vocab: dict[str, int]
    tf: sparse.csr_matrix
    length: np.ndarray

    @classmethod
    def build(cls, bags: Sequence[dict[str, float]]) -> _Field:
        """Count matrix from one term bag per passage (vocabulary sorted, so builds are deterministic)."""
        vocab = {t: i for i, t in enumerate(sorted({t for bag in bags for t in bag}))}
        rows, cols, vals = [], [], []
        for r, bag in enumerate(bags):
            for t, v in bag.items():
                rows.append(r)
                cols.append(vocab[t])
                vals.append(v)
        tf = sparse.csr_matrix((np.array(vals, np.float32), (rows, cols)), shape=(len(bags), len(vocab)))
        tf.sort_indices()
        return cls(vocab, tf, np.asarray(tf.sum(axis=1), np.float32).ravel())

    def score(self, query: Sequence[Concept], settings: Settings) -> np.ndarray:
        """BM25 per passage, divided by the query's self-score (so 1 ≈ every concept matched once)."""
        n = self.tf.shape[0]
        rows, cols, vals, weights = [], [], [], []
        for c in query:
            hits = [(self.vocab[t], w) for t, w in c.terms if t in self.vocab]
            if hits:
                rows += [i for i, _ in hits]
                cols += [len(weights)] * len(hits)
                vals += [w for _, w in hits]
                weights.append(c.weight)
        if not weights or n == 0:
            return np.zeros(n, np.float32)
        expand = sparse.csr_matrix((vals, (rows, cols)), shape=(len(self.vocab), len(weights)))
        pseudo = (self.tf @ expand).tocoo()  # passages × concepts: synonym counts summed
        df = np.bincount(pseudo.col, minlength=len(weights))
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        norm = settings.k1 * (1 - settings.b + settings.b * self.length / max(self.length.mean(), 1e-9))
        tf = pseudo.data
        bm25 = idf[pseudo.col] * tf * (settings.k1 + 1) / (tf + norm[pseudo.row])
        w = np.asarray(weights)
        scores = np.bincount(pseudo.row, weights=bm25 * w[pseudo.col], minlength=n)
        self_score = float((w * idf)[df > 0].sum())
        return (scores / self_score).astype(np.float32) if self_score > 0 else scores.astype(np.float32)


@dataclass(frozen=True)
class LexicalIndex:
    """BM25 over English and Chinese passages; queries in either language reach both."""

    languages: tuple[str, ...]
    rows: dict[str, np.ndarray]  # language → global row numbers of its passages
    native: dict[str, _Field]
    translated: dict[str, _Field] = field(default_factory=dict)
    settings: Settings = Settings()

    @classmethod
    def build(cls, texts: Sequence[str], languages: Sequence[str], settings: Settings = Settings()) -> LexicalIndex:
        """Index passages; `languages` gives "en" or "zh" (or "zh-hant") for each text."""
        if len(texts) != len(languages):
            raise ValueError("texts and languages differ in length")
        langs = tuple(base(x) for x in languages)
        rows, native, translated = {}, {}, {}
        for lang in LANGUAGES:
            idx = np.array([i for i, x in enumerate(langs) if x == lang], np.int64)
            rows[lang] = idx
            native[lang] = _Field.build([Counter(analyze(texts[i], lang)) for i in idx])
            if settings.doc_translate:
                translated[lang] = _Field.build([translate_document(texts[i], lang, settings) for i in idx])
        return cls(langs, rows, native, translated, settings)

    def __len__(self) -> int:
        return len(self.languages)

    def search(self, query: str, k: int = 50, language: str | None = None) -> list[tuple[int, float]]:
        """Top-k (row, score), best first; scores are comparable across the two languages."""
        source = base(language or detect(query))
        n = len(self)
        scores = np.zeros(n, np.float32)
        for target in LANGUAGES:
            if not len(self.rows[target]):
                continue
            s = self.native[target].score(concepts(query, source, target, self.settings), self.settings)
            if target != source and self.translated:
                extra = self.translated[target].score(concepts(query, source, source, self.settings), self.settings)
                s = (s + self.settings.doc_weight * extra) / (1 + self.settings.doc_weight)
            scores[self.rows[target]] = s
        top = np.flatnonzero(scores > 0)
        top = top[np.lexsort((top, -scores[top]))][:k]
        return [(int(i), float(scores[i])) for i in top]
