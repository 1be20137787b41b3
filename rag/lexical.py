"""Bilingual BM25: English and Chinese passages, queries expanded across languages through CC-CEDICT."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import sparse

from rag import cedict
from rag.lang import base, detect, to_simplified

FORMAT = 2  # 1: one npz per field (read whole); 2: .npy arrays, memory-mapped
LANGUAGES = ("en", "zh")

EN_STOPWORDS = cedict.STOPWORDS | frozenset(
    re.findall(r"\S+", "whose many much yes may might must shall let like get got per via among upon within without")
)
ZH_STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """的 了 是 在 和 与 及 或 等 也 都 而 之 其 这 那 这个 那个 这些 那些 这样 有 个 为 以 于
        被 把 从 对 将 就 还 又 并 但 所 由 向 到 给 让 吗 呢 吧 啊 么 什么 哪 哪个 哪些 哪里 哪儿
        谁 多少 几 何 如何 为什么 为何 怎么 怎样 是否 我 你 他 她 它 我们 你们 他们 她们 它们 其中
        一个 一种 之一 着 过 得 地 即 则 该 此 各 每 曾 已 已经 因为 所以 如果 虽然 但是 而且 以及
        或者 可以 能 会 叫做 称为 哪一 哪一个 什么样""",
    )
)

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUNS = re.compile(rf"([{_HAN}]+)|[^{_HAN}]+")
_WORD = re.compile(r"[a-z0-9]+")
_PLURALS = (("sses", "ss"), ("ies", "y"), ("ied", "y"), ("ss", "ss"), ("us", "us"), ("is", "is"), ("s", ""))
_SUFFIXES = (
    ("ization", "ize"),
    ("ation", "ate"),
    ("ingly", ""),
    ("ing", ""),
    ("edly", ""),
    ("ed", ""),
    ("ly", ""),
    ("ment", ""),
    ("ness", ""),
)
_ORDINAL = re.compile(r"(?<=\d)(?:st|nd|rd|th|s)$")


@dataclass(frozen=True, slots=True)
class Settings:
    """BM25 and cross-lingual expansion knobs; defaults are the best measured on XQuAD dev."""

    k1: float = 1.2
    b: float = 0.75
    zh_glosses: int = 10  # English gloss words kept per Chinese word
    en_heads: int = 10  # Chinese headwords kept per English word or phrase
    doc_translate: bool = True  # also index each passage's dictionary translation, as a second field
    doc_weight: float = 1.0  # weight of that field next to the query-side translation


Concept = tuple[tuple[str, float], ...]  # one query word: the index terms expressing it, best weight 1


# ---------------------------------------------------------------- analysis


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Light suffix stripping so inflections and dictionary lemmas meet ("immigration" ~ "immigrate")."""
    if word[:1].isdigit():  # "18th" and "1700s" meet "18世纪" and "1700年代"
        return _ORDINAL.sub("", word)
    if len(word) <= 3 or not word.isalpha():
        return word
    suffix, repl = next((x for x in _PLURALS if word.endswith(x[0])), ("", ""))
    word = word[: len(word) - len(suffix)] + repl
    for suffix, repl in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + repl
            if not repl and len(word) > 3 and word[-1] == word[-2] and word[-1] not in "lsz":
                word = word[:-1]  # "stopped" → "stop"
            break
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word[:-1] + "i" if word.endswith("y") and len(word) > 3 else word


def _english_words(text: str) -> list[str]:
    """Lowercased content words, unstemmed, in order ("Marconi's" → "marconi")."""
    return [w for w in _WORD.findall(text.lower().replace("'s", "")) if w not in EN_STOPWORDS]


@lru_cache(maxsize=1)
def _jieba():
    """A private jieba tokenizer, built on first use (about a second) and kept."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)  # jieba's own logger reports dictionary loading on stderr
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


def _chinese_words(run: str) -> list[str]:
    """Words of a Han-only run in jieba search mode (compounds plus their sub-words), stopwords dropped."""
    return [w for w in _jieba().cut_for_search(run) if w not in ZH_STOPWORDS]


def _runs(text: str) -> Iterator[tuple[bool, str]]:
    """(is_han, run) pieces of NFKC-normalised, Simplified text."""
    for m in _RUNS.finditer(to_simplified(unicodedata.normalize("NFKC", text))):
        yield m.group(1) is not None, m.group()


def analyze(text: str, language: str) -> list[str]:
    """Index tokens: English stems, Simplified jieba words; Latin words and numbers in Chinese as English.

    Runs of either script are analysed by their own rules whatever `language` says, so mixed text works.
    """
    if base(language) not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}")
    out: list[str] = []
    for han, run in _runs(text):
        out += _chinese_words(run) if han else [stem(w) for w in _english_words(run)]
    return out


# ---------------------------------------------------------------- translation


def _best_first(weights: dict[str, float]) -> Concept:
    """Scale weights so the best is 1, and sort best first."""
    top = max(weights.values(), default=1.0)
    return tuple(sorted(((t, w / top) for t, w in weights.items()), key=lambda x: (-x[1], x[0])))


@lru_cache(maxsize=65536)
def _zh_to_en(word: str, limit: int) -> Concept:
    """English stems for a Chinese word; an unknown word borrows the glosses of its longest known parts."""
    parts = [word] if cedict.has(word) else []
    if not parts:
        i = 0
        while i < len(word):  # greedy longest match: 黑豹队 → 黑豹 + 队
            j = next((j for j in range(min(len(word), i + 6), i + 1, -1) if cedict.has(word[i:j])), i + 1)
            parts.append(word[i:j])
            i = j
    best: dict[str, float] = {}
    for part in parts:
        scale = 0.5 if len(part) == 1 and len(word) > 1 else 1.0  # a lone character of a word is a weak clue
        for gloss, w in cedict.zh_to_en_weighted(part)[:limit]:
            for s in analyze(gloss, "en"):
                best[s] = max(w * scale, best.get(s, 0.0))
    return _best_first(best)


@lru_cache(maxsize=65536)
def _head_words(head: str) -> tuple[str, ...]:
    """A dictionary headword cut as the index cuts Chinese text (headwords recur across English words)."""
    return tuple(_chinese_words(head))


@lru_cache(maxsize=65536)
def _en_to_zh(words: str, limit: int) -> Concept:
    """Chinese index terms for an English word or phrase: its headwords, cut as the index cuts them."""
    best: dict[str, float] = {}
    for head, w in cedict.en_to_zh_weighted(words, limit):
        for t in _head_words(head):
            best[t] = max(w, best.get(t, 0.0))
    return _best_first(best)


_HAN_WORD = re.compile(rf"[{_HAN}]+")


@lru_cache(maxsize=65536)
def _romanise(syllables: str) -> tuple[str, ...]:
    """Pinyin as the English index spells it (stemmed), unless it is a common English word ("long", "fan")."""
    from wordfreq import zipf_frequency

    if len(syllables) < 2 or zipf_frequency(syllables, "en") >= 4.5:
        return ()
    return tuple(analyze(syllables, "en"))


def names_in_pinyin(words: Sequence[str]) -> dict[int, tuple[str, ...]]:
    """Pinyin spellings of the Chinese personal and place names among a passage's words, by word position.

    English text spells Chinese names in pinyin, which CC-CEDICT glosses cannot reach: 毛旭 → "Mao Xu",
    王|海星 → "Wang Haixing", 海口 → "Haikou". A word CC-CEDICT lacks is read as a name: surname plus given
    name when its first character is a surname, else whole. A lone surname takes the next short word as the
    given name (jieba cuts 王海星 into 王 + 海星, "starfish").
    """
    out: dict[int, tuple[str, ...]] = {}
    for i, w in enumerate(words):
        if not _HAN_WORD.fullmatch(w) or i in out:
            continue
        if not cedict.has(w) and len(w) in (2, 3) and cedict.is_surname(w[0]):
            parts = [cedict.pinyin(w[0]), cedict.pinyin(w[1:])]
        elif len(w) == 1 and cedict.is_surname(w) and i + 1 < len(words) and _HAN_WORD.fullmatch(words[i + 1]):
            if len(words[i + 1]) <= 2:
                out[i + 1] = _romanise(cedict.pinyin(words[i + 1]))
            parts = [cedict.pinyin(w)]
        elif not cedict.has(w) and len(w) >= 2:
            parts = [cedict.pinyin(w)]
        else:
            continue
        out[i] = tuple(t for p in parts for t in _romanise(p))
    return {i: terms for i, terms in out.items() if terms}


def _with_names(words: Sequence[str], settings: Settings) -> list[Concept]:
    """Each Chinese word as English terms: its dictionary glosses, plus the pinyin of names."""
    names = names_in_pinyin(words)
    out: list[Concept] = []
    for i, w in enumerate(words):
        terms = dict(_zh_to_en(w, settings.zh_glosses))
        for t in names.get(i, ()):
            terms[t] = 1.0
        if terms:
            out.append(tuple(terms.items()))
    return out


def concepts(text: str, target: str, settings: Settings, passthrough: bool = True) -> list[Concept]:
    """The text as concepts over `target`-language index terms (translating the runs in the other language).

    Latin words, names and numbers also pass through unchanged, as they match across languages.
    """
    out: list[Concept] = []
    for han, run in _runs(text):
        if han:
            words = _chinese_words(run)
            out += [((w, 1.0),) for w in words] if target == "zh" else _with_names(words, settings)
            continue
        words = _english_words(run)
        if target == "en":
            out += [((stem(w), 1.0),) for w in words] if passthrough else []
            continue
        for w in words:
            expressed = dict(_en_to_zh(w, settings.en_heads))
            if passthrough:
                expressed[stem(w)] = 1.0
            if expressed:
                out.append(tuple(expressed.items()))
        for n in (2, 3):  # short phrases ("steam engine", "high court") translate better than their words
            for i in range(len(words) - n + 1):
                if terms := _en_to_zh(" ".join(words[i : i + n]), settings.en_heads):
                    out.append(terms)
    return out


def translate_document(text: str, language: str, settings: Settings, tokens: Sequence[str] = ()) -> dict[str, float]:
    """A passage's dictionary translation into the other language, as fractional term counts.

    For Chinese, pass the passage's analysed `tokens` when at hand: cutting the text again is the slow part.
    """
    if base(language) == "zh":
        found: Iterable[Concept] = _with_names([w for w in tokens or analyze(text, "zh") if not w.isascii()], settings)
    else:
        found = concepts(text, "zh", settings, passthrough=False)
    counts: dict[str, float] = defaultdict(float)
    for terms in found:
        total = sum(w for _, w in terms)  # each source word adds one count, shared by its translations
        for t, w in terms:
            counts[t] += w / total
    return counts


# ---------------------------------------------------------------- index


@dataclass(frozen=True)
class _Field:
    """One BM25 field over one language's passages: term counts (passages × vocabulary, by column).

    Saved as plain `.npy` arrays (CSC data/indices/indptr and passage lengths) that open memory-mapped: a
    question reads only the postings of its terms.
    """

    vocab: dict[str, int]
    tf: sparse.csc_matrix  # column-major: a query reads only its terms' postings
    lengths: np.ndarray | None = None  # passage lengths in tokens (stored; else summed from `tf`)

    @cached_property
    def length(self) -> np.ndarray:
        """Passage lengths in tokens."""
        if self.lengths is not None:
            return self.lengths
        return np.asarray(self.tf.sum(axis=1), np.float64).ravel()

    @classmethod
    def build(cls, bags: Sequence[Mapping[str, float]]) -> _Field:
        """Count matrix from one term bag per passage; a sorted vocabulary keeps builds deterministic."""
        vocab = {t: i for i, t in enumerate(sorted({t for bag in bags for t in bag}))}
        rows = [r for r, bag in enumerate(bags) for _ in bag]
        cols = [vocab[t] for bag in bags for t in bag]
        vals = np.array([v for bag in bags for v in bag.values()], np.float32)
        tf = sparse.csc_matrix((vals, (rows, cols)), shape=(len(bags), len(vocab)), dtype=np.float32)
        tf.sort_indices()
        return cls(vocab, tf)

    @cached_property
    def _csc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indptr, indices, data) as plain arrays over the same memory (slicing a memory map object is slow)."""
        return np.asarray(self.tf.indptr), np.asarray(self.tf.indices), np.asarray(self.tf.data)

    def postings(
        self, query: Sequence[Concept], live: np.ndarray | None = None
    ) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(concept position in `query`, passage rows, summed counts) per concept matching a live passage.

        A concept's translations count as one term (Pirkola's structured query): their counts add up, in the
        order the concept lists them. Only the postings of the query's terms are read; rows come sorted.
        """
        indptr, indices, data = self._csc
        out = []
        for qi, c in enumerate(query):
            found = []
            for t, w in c:
                i = self.vocab.get(t)
                if i is None:
                    continue
                lo, hi = int(indptr[i]), int(indptr[i + 1])  # the term's postings: a slice of the mapped arrays
                if hi > lo:  # (a weight of 1 leaves the counts as they are: no copy)
                    counts = np.asarray(data[lo:hi], np.float32)
                    found.append((np.asarray(indices[lo:hi], np.int64), counts if w == 1.0 else counts * w))
            if not found:
                continue
            r: np.ndarray
            v: np.ndarray
            if len(found) == 1:  # one term: its postings as they are
                r, v = found[0]
            else:  # a concept's terms in one passage add up, in term order (counted per passage, not sorted)
                at = np.concatenate([x for x, _ in found])
                total = np.bincount(at, weights=np.concatenate([y for _, y in found]), minlength=self.tf.shape[0])
                r = np.flatnonzero(np.bincount(at, minlength=self.tf.shape[0]))
                v = np.asarray(total[r], np.float32)
            if live is not None:
                keep = live[r]
                r, v = r[keep], v[keep]
            if len(r):
                out.append((qi, r, v))
        return out

    def columns(self, query: Sequence[Concept]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The query's terms in this field, for the compiled scorer: (columns, float32 weights, concept offsets:
        concept i's terms are [offsets[i], offsets[i + 1]), in the order the concept lists them)."""
        cols: list[int] = []
        weights: list[float] = []
        offsets = [0]
        for c in query:
            for t, w in c:
                i = self.vocab.get(t)
                if i is not None:
                    cols.append(i)
                    weights.append(w)
            offsets.append(len(cols))
        return np.array(cols, np.int64), np.array(weights, np.float32), np.array(offsets, np.int64)

    def score(self, query: Sequence[Concept], settings: Settings) -> np.ndarray:
        """BM25 per passage divided by the query's self-score, so 1 ≈ every concept matched once."""
        n = self.tf.shape[0]
        return _bm25([(self, np.arange(n), None)], query, settings, n)


Part = tuple[_Field, np.ndarray, "np.ndarray | None"]  # field, global row of each passage, live mask or None
Scored = tuple[np.ndarray, np.ndarray]  # global rows, their float32 scores


@lru_cache(maxsize=1)
def _compiled() -> Any:
    """The compiled scorer (`rag.bm25_jit`), imported on first use (numba takes about half a second to import);
    None when numba is not installed, and the numpy scorer below serves."""
    try:
        from rag import bm25_jit
    except ImportError:
        return None
    return bm25_jit


def _live_stats(parts: Sequence[Part]) -> tuple[int, float]:
    """(live passages, their summed lengths) over all parts: BM25's collection size and mean length."""
    n, total_len = 0, 0.0
    for f, rows, live in parts:
        if live is None:
            n += len(rows)
            total_len += float(np.sum(f.length))
        else:
            n += int(live.sum())
            total_len += float(np.sum(f.length[live]))
    return n, total_len


def _field_scores(parts: Sequence[Part], query: Sequence[Concept], settings: Settings) -> list[np.ndarray | None]:
    """`_numpy_field_scores`, compiled when numba is installed (the same floats)."""
    jit = _compiled()
    if jit is None:
        return _numpy_field_scores(parts, query, settings)
    totals, self_score = _compiled_totals(jit, parts, query, settings, _live_stats(parts))
    return [None if t is None else jit.finish(t, self_score, _NONE, 1.0, _F1, _F1, False, len(t)) for t in totals]


_NONE = np.zeros(0, np.float64)  # no totals (the kernels take arrays, not None)
_NO_LIVE = np.zeros(0, np.bool_)
_F1 = np.float32(1)


def _compiled_totals(
    jit: Any, parts: Sequence[Part], query: Sequence[Concept], settings: Settings, stats: tuple[int, float]
) -> tuple[list[np.ndarray | None], float]:
    """`_numpy_field_scores` before its last step: per part the float64 BM25 sums (None when nothing matches),
    and the self-score they are divided by. `stats` is `_live_stats(parts)` (callers keep it: it reads every
    passage's length)."""
    if not query:
        return [None] * len(parts), 1.0
    n, total_len = stats
    found = []
    for f, rows, live in parts:
        terms = f.columns(query)
        found.append(
            (terms, jit.gather(f._csc, terms, _NO_LIVE if live is None else live, live is not None, len(rows)))
        )
    if not any(g[0].any() for _t, g in found) or n == 0:
        return [None] * len(parts), 1.0
    df = np.zeros(len(query), np.int64)
    for _terms, g in found:
        df += g[0]
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    bm25 = (settings.k1, settings.b, max(total_len / n, 1e-9))
    out: list[np.ndarray | None] = []
    for (f, rows, live), (terms, g) in zip(parts, found, strict=True):
        if not g[0].any():
            out.append(None)
            continue
        total = np.zeros(len(rows), np.float64)
        has_live = live is not None
        jit.accumulate(
            f._csc, terms, live if has_live else _NO_LIVE, has_live, g, idf, np.asarray(f.length), bm25, total
        )
        out.append(total)
    return out, float(idf.sum())


def _numpy_field_scores(parts: Sequence[Part], query: Sequence[Concept], settings: Settings) -> list[np.ndarray | None]:
    """BM25 of `query` over several fields of one language read as one collection (segments of an index):
    per part, its passages' scores (float32, 0 where nothing matches), or None when none matches.

    The reference scorer (numpy), and the one serving when numba is not installed. Each part is (field,
    global row of each of its passages, live mask of its passages or None). Document frequencies, the passage
    count and the mean length are those of the live passages of all parts together, so the scores equal those
    of one field built over the same live passages. Unmatched concepts count at the highest idf (so a pool that
    explains less of the query scores lower): the self-score is the idf sum.
    """
    totals, self_score = _numpy_totals(parts, query, settings)
    return [None if t is None else (t / self_score).astype(np.float32) for t in totals]


def _numpy_totals(
    parts: Sequence[Part], query: Sequence[Concept], settings: Settings
) -> tuple[list[np.ndarray | None], float]:
    """`_numpy_field_scores` before the division: per part the float64 sums (or None), and the self-score."""
    if not query:
        return [None] * len(parts), 1.0
    n, total_len = 0, 0.0
    found = []
    for f, rows, live in parts:
        length = f.length
        if live is None:
            n += len(rows)
            total_len += float(np.sum(length))
        else:
            n += int(live.sum())
            total_len += float(np.sum(length[live]))
        found.append(f.postings(query, live))
    if not any(found) or n == 0:
        return [None] * len(parts), 1.0
    df = np.zeros(len(query), np.int64)
    for postings in found:
        for qi, r, _v in postings:
            df[qi] += len(r)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    avg = max(total_len / n, 1e-9)
    self_score = float(idf.sum())
    out: list[np.ndarray | None] = []
    for (f, _rows, _live), postings in zip(parts, found, strict=True):
        if not postings:
            out.append(None)
            continue
        norm = settings.k1 * (1 - settings.b + settings.b * np.asarray(f.length, np.float64) / avg)
        total = np.zeros(len(norm), np.float64)
        for qi, r, v in postings:  # concept by concept, as one sum over the collection would add them
            # idf * v * (k1 + 1) / (v + norm), in place (the same float64 operations in the same order)
            x = v.astype(np.float64)
            x *= idf[qi]
            x *= settings.k1 + 1
            d = norm[r]
            d += v
            x /= d
            total[r] += x
        out.append(total)
    return out, self_score


def _bm25(parts: Sequence[Part], query: Sequence[Concept], settings: Settings, size: int) -> np.ndarray:
    """`_field_scores` as one array over `size` global rows."""
    out = np.zeros(size, np.float32)
    for (_f, rows, _live), s in zip(parts, _field_scores(parts, query, settings), strict=True):
        if s is not None:
            out[rows] = s
    return out


def top_k(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best positive (row, score), best first, ties by row: what `LexicalIndex.search` keeps."""
    pos = np.flatnonzero(scores > 0) if k > 0 else np.zeros(0, np.int64)
    if len(pos) > k:
        kth = np.partition(scores[pos], len(pos) - k)[len(pos) - k]
        pos = pos[scores[pos] >= kth]  # the k best and any ties with the k-th
    pos = pos[np.lexsort((rows[pos], -scores[pos]))][: max(k, 0)]
    return rows[pos], scores[pos]


@dataclass(frozen=True)
class LexicalIndex:
    """BM25 over English and Chinese passages; a query in either language reaches both."""

    languages: tuple[str, ...]  # "en" or "zh" per row
    native: dict[str, _Field]  # language → its passages' own tokens
    translated: dict[str, _Field] = field(default_factory=dict)  # language → their dictionary translations
    settings: Settings = Settings()

    @classmethod
    def build(cls, texts: Sequence[str], languages: Sequence[str], settings: Settings = Settings()) -> LexicalIndex:
        """Index passages; `languages` gives "en", "zh" or "zh-hant" per text."""
        if len(texts) != len(languages):
            raise ValueError("texts and languages differ in length")
        langs = tuple(base(x) for x in languages)
        if bad := set(langs) - set(LANGUAGES):
            raise ValueError(f"unsupported languages {sorted(bad)}")
        native, translated = {}, {}
        for lang in LANGUAGES:
            part = [t for t, x in zip(texts, langs, strict=True) if x == lang]
            tokens = [analyze(t, lang) for t in part]
            native[lang] = _Field.build([Counter(x) for x in tokens])
            if settings.doc_translate:
                translated[lang] = _Field.build(
                    [translate_document(t, lang, settings, x) for t, x in zip(part, tokens, strict=True)]
                )
        return cls(langs, native, translated, settings)

    def __len__(self) -> int:
        return len(self.languages)

    @cached_property
    def _rows(self) -> dict[str, np.ndarray]:
        """Row numbers of each language's passages."""
        langs = np.array(self.languages)
        return {lang: np.flatnonzero(langs == lang) for lang in LANGUAGES}

    def search(self, query: str, k: int = 50, language: str | None = None) -> list[tuple[int, float]]:
        """Top-k (row, score), best first; scores are comparable across the two languages."""
        return SegmentedLexical([(0, self, None)]).search(query, k, language)

    def scores(self, query: str, language: str | None = None) -> np.ndarray:
        """Every row's score for `query` as one array (0 where nothing matches)."""
        return SegmentedLexical([(0, self, None)]).scores(query, language)

    def top(self, query: str, k: int, language: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (row, score) with a positive score, best first, ties by row."""
        return SegmentedLexical([(0, self, None)]).top(query, k, language)

    def warm_up(self) -> None:
        """Compile the BM25 loops for this index's arrays now (`SegmentedLexical.warm_up`)."""
        SegmentedLexical([(0, self, None)]).warm_up()

    def document_frequency(self, term: str, language: str) -> tuple[int, int]:
        """(passages of `language` holding the index term, passages of `language`)."""
        field = self.native.get(base(language))
        if field is None:
            return 0, 0
        col = field.vocab.get(term)
        df = 0 if col is None else int(field.tf.indptr[col + 1] - field.tf.indptr[col])
        return df, field.tf.shape[0]

    def save(self, folder: Path) -> None:
        """Write the index as plain files, atomically: manifest.json, and per field its vocabulary (json) and
        its CSC arrays and passage lengths as `.npy` (memory-mapped when read)."""
        folder = Path(folder)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        manifest = {
            "format": FORMAT,
            "kind": "lexical-bm25",
            "settings": asdict(self.settings),
            "languages": "".join("e" if x == "en" else "z" for x in self.languages),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        for kind, fields in (("native", self.native), ("translated", self.translated)):
            for lang, f in fields.items():
                vocab = sorted(f.vocab, key=f.vocab.__getitem__)
                (tmp / f"{kind}.{lang}.vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")
                arrays = {
                    "data": np.asarray(f.tf.data, np.float32),
                    "indices": np.asarray(f.tf.indices, np.int32),
                    # int32 while it fits, as scipy reads it (else it copies the array instead of mapping it)
                    "indptr": np.asarray(f.tf.indptr, np.int32 if f.tf.nnz < 2**31 else np.int64),
                    "length": np.asarray(f.length, np.float32),
                    "shape": np.array(f.tf.shape, np.int64),
                }
                for name, arr in arrays.items():
                    np.save(tmp / f"{kind}.{lang}.{name}.npy", arr)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> LexicalIndex:
        """Read an index written by save() (format 2: memory-mapped arrays; format 1: npz, read whole)."""
        folder = Path(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format") not in (1, FORMAT) or manifest.get("kind") != "lexical-bm25":
            raise ValueError(f"{folder} is not a lexical index of format {FORMAT}")
        mode: Literal["r"] | None = "r" if mmap else None
        fields: dict[str, dict[str, _Field]] = {"native": {}, "translated": {}}
        for kind, found in fields.items():
            for lang in LANGUAGES:
                stem_ = folder / f"{kind}.{lang}"
                if not (folder / f"{kind}.{lang}.vocab.json").exists():
                    continue
                vocab = json.loads((folder / f"{kind}.{lang}.vocab.json").read_text())
                lengths = None
                if manifest["format"] == 1:
                    with np.load(f"{stem_}.npz") as z:
                        arrays = (z["data"], z["indices"], z["indptr"])
                        shape = tuple(int(x) for x in z["shape"])
                else:
                    arrays = tuple(
                        np.load(f"{stem_}.{name}.npy", mmap_mode=mode) for name in ("data", "indices", "indptr")
                    )
                    shape = tuple(int(x) for x in np.load(f"{stem_}.shape.npy"))
                    lengths = np.load(f"{stem_}.length.npy", mmap_mode=mode)
                tf = sparse.csc_matrix(arrays, shape=shape, copy=False)
                found[lang] = _Field({t: i for i, t in enumerate(vocab)}, tf, lengths)
        languages = tuple("en" if c == "e" else "zh" for c in manifest["languages"])
        return cls(languages, fields["native"], fields["translated"], Settings(**manifest["settings"]))

    @classmethod
    def concat(cls, parts: Sequence[tuple[LexicalIndex, np.ndarray | None]]) -> LexicalIndex:
        """One index over the kept rows (mask, or None for all) of several, in order: counts are copied, not
        re-analysed (merging segments). All parts must share settings."""
        if not parts:
            return cls.build([], [])
        settings = parts[0][0].settings
        languages: list[str] = []
        for lex, keep in parts:
            if lex.settings != settings:
                raise ValueError("lexical indexes with different settings cannot be merged")
            languages += [x for i, x in enumerate(lex.languages) if keep is None or keep[i]]
        out: dict[str, dict[str, _Field]] = {"native": {}, "translated": {}}
        for kind in ("native", "translated") if settings.doc_translate else ("native",):
            for lang in LANGUAGES:
                pieces = []
                for lex, keep in parts:
                    f = getattr(lex, kind).get(lang)
                    rows = lex._rows[lang]
                    if f is not None and len(rows):
                        pieces.append((f, np.arange(len(rows)) if keep is None else np.flatnonzero(keep[rows])))
                vocab = {t: i for i, t in enumerate(sorted({t for f, _ in pieces for t in f.vocab}))}
                blocks = [sparse.csr_matrix((0, len(vocab)), dtype=np.float32)]
                for f, sel in pieces:
                    remap = np.array([vocab[t] for t in sorted(f.vocab, key=f.vocab.__getitem__)], np.int64)
                    coo = sparse.csr_matrix(f.tf)[sel].tocoo()
                    shape = (len(sel), len(vocab))
                    blocks.append(
                        sparse.csr_matrix((coo.data, (coo.row, remap[coo.col])), shape=shape, dtype=np.float32)
                    )
                tf = sparse.vstack(blocks).tocsc().astype(np.float32)
                tf.sort_indices()
                out[kind][lang] = _Field(vocab, tf)
        return cls(tuple(languages), out["native"], out["translated"], settings)


class SegmentedLexical:
    """BM25 over several lexical indexes (the segments of an index) read as one, skipping deleted rows.

    Each part is (first global row, LexicalIndex, live mask over its rows or None). Scores equal those of one
    LexicalIndex built over the live passages, and a question reads only the postings of its terms.
    """

    def __init__(self, parts: Sequence[tuple[int, LexicalIndex, np.ndarray | None]]) -> None:
        self.parts = list(parts)
        self.size = max((o + len(lex) for o, lex, _ in self.parts), default=0)
        self.settings = self.parts[0][1].settings if self.parts else Settings()

    def __len__(self) -> int:
        return self.size

    def __getattr__(self, name: str) -> Any:
        """A single segment without deleted rows is its LexicalIndex (`native`, `translated`, … for code that
        reads the fields, such as rag.sparse); several segments have no such fields."""
        parts = self.__dict__.get("parts", ())
        if len(parts) == 1 and parts[0][0] == 0 and parts[0][2] is None and not name.startswith("__"):
            return getattr(parts[0][1], name)
        raise AttributeError(f"{type(self).__name__} of {len(parts)} segments has no attribute {name!r}")

    @cached_property
    def languages(self) -> tuple[str, ...]:
        out = ["en"] * self.size
        for o, lex, _ in self.parts:
            out[o : o + len(lex)] = lex.languages
        return tuple(out)

    def _field_parts(self, kind: str, lang: str) -> dict[int, Part]:
        """Part number → (field, global rows, live mask) of each segment holding `kind` passages of `lang`."""
        cache = self.__dict__.setdefault("_field_parts_cache", {})  # the parts never change: made once
        if (kind, lang) not in cache:
            cache[kind, lang] = self._make_field_parts(kind, lang)
        return cache[kind, lang]

    def _make_field_parts(self, kind: str, lang: str) -> dict[int, Part]:
        out = {}
        for p, (o, lex, live) in enumerate(self.parts):
            f = getattr(lex, kind).get(lang)
            rows = lex._rows[lang]
            if f is None or not len(rows):
                continue
            out[p] = (f, rows + o, None if live is None else live[rows])
        return out

    def _stats(self, kind: str, lang: str) -> tuple[int, float]:
        """`_live_stats` of a field's parts, once per index (it reads every passage's length)."""
        cache = self.__dict__.setdefault("_stats_cache", {})
        if (kind, lang) not in cache:
            cache[kind, lang] = _live_stats(list(self._field_parts(kind, lang).values()))
        return cache[kind, lang]

    def warm_up(self) -> None:
        """Compile the BM25 loops now, or read them from numba's cache (about 4 s and 0.5 s), for every kind of
        array this index's fields hold, so that no question waits for it: a few terms of one field of each kind
        are scored, whatever a warm-up question would match."""
        jit = _compiled()
        if jit is None:
            return
        seen = set()
        for kind in ("native", "translated"):
            for lang in LANGUAGES:
                for part in self._field_parts(kind, lang).values():
                    f, rows, _live = part
                    key = tuple((a.dtype.str, a.flags.writeable) for a in (*f._csc, np.asarray(f.length)))
                    terms = list(itertools.islice(f.vocab, 3))
                    if key in seen or not terms:
                        continue
                    seen.add(key)
                    query = [((terms[0], 1.0),), tuple((t, 0.5) for t in terms)]
                    totals, self_score = _compiled_totals(jit, [part], query, self.settings, _live_stats([part]))
                    t = _NONE if totals[0] is None else totals[0]
                    jit.finish(t, self_score, _NONE, 1.0, _F1, _F1, False, len(t))
                    jit.top(t, self_score, t, self_score, _F1, _F1 + _F1, True, rows[: len(t)], 1)

    def _compiled_parts(self, jit: Any, query: str, language: str | None, k: int | None) -> list[Scored]:
        """`part_scores` (k None) or each part's k best positive (rows, scores) in no order, by the compiled
        scorer: per part, the native and translated fields' float64 sums go to one loop that mixes them, and
        with k, keeps the k best without an array of scores."""
        source = base(language or detect(query))
        out = []
        w = self.settings.doc_weight
        for target in LANGUAGES:
            native = self._field_parts("native", target)
            if not native:
                continue
            query_n = concepts(query, target, self.settings)
            tn, sn = _compiled_totals(jit, list(native.values()), query_n, self.settings, self._stats("native", target))
            own = dict(zip(native, tn, strict=True))
            translated = self._field_parts("translated", target)
            pair = target != source and bool(translated)
            other: dict[int, np.ndarray | None] = {}
            st = 1.0
            if pair:  # the source-language query against translated passages
                query_t = concepts(query, source, self.settings)
                stats = self._stats("translated", target)
                tt, st = _compiled_totals(jit, list(translated.values()), query_t, self.settings, stats)
                other = dict(zip(translated, tt, strict=True))
            for p in sorted(native.keys() | other.keys()):
                a, e = own.get(p), other.get(p)
                if a is None and e is None:
                    continue
                rows = (native.get(p) or translated[p])[1]
                args = (_NONE if a is None else a, sn, _NONE if e is None else e, st, np.float32(w), np.float32(1 + w))
                if k is None:
                    out.append((rows, jit.finish(*args, pair, len(rows))))
                else:
                    at, best = jit.top(*args, pair, rows, k)
                    out.append((rows[at], best))
        return out

    def part_scores(self, query: str, language: str | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        """(global rows, float32 scores) per segment and language: `scores` without the array over every row."""
        jit = _compiled()
        if jit is not None:
            return self._compiled_parts(jit, query, language, None)
        source = base(language or detect(query))
        out = []
        for target in LANGUAGES:
            native = self._field_parts("native", target)
            if not native:
                continue
            scored = dict(
                zip(
                    native,
                    _field_scores(list(native.values()), concepts(query, target, self.settings), self.settings),
                    strict=True,
                )
            )
            translated = self._field_parts("translated", target)
            if target != source and translated:  # the source-language query against translated passages
                query_t = concepts(query, source, self.settings)
                extra = dict(
                    zip(translated, _field_scores(list(translated.values()), query_t, self.settings), strict=True)
                )
                w = self.settings.doc_weight
                for p in sorted(native.keys() | translated.keys()):
                    rows = (native.get(p) or translated[p])[1]
                    s, e = scored.get(p), extra.get(p)
                    if s is None and e is None:
                        scored[p] = None
                        continue
                    s = np.zeros(len(rows), np.float32) if s is None else s
                    e = np.zeros(len(rows), np.float32) if e is None else e
                    scored[p] = (s + w * e) / (1 + w)
            for p in sorted(scored):
                s = scored[p]
                if s is not None:
                    out.append(((native.get(p) or translated[p])[1], s))
        return out

    def scores(self, query: str, language: str | None = None) -> np.ndarray:
        """Every row's score for `query` as one array (0 where nothing matches or the row is deleted)."""
        scores = np.zeros(self.size, np.float32)
        for rows, s in self.part_scores(query, language):
            scores[rows] += s
        return scores

    def top(self, query: str, k: int, language: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The k best (row, score) with a positive score, best first, ties by row (as `search`), without an
        array over every row: each segment's k best, then the k best of those."""
        jit = _compiled()
        if jit is not None:
            picked = self._compiled_parts(jit, query, language, k)
        else:
            picked = [top_k(rows, s, k) for rows, s in self.part_scores(query, language)]
        if not picked:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return top_k(np.concatenate([r for r, _ in picked]), np.concatenate([s for _, s in picked]), k)

    def search(self, query: str, k: int = 50, language: str | None = None) -> list[tuple[int, float]]:
        """Top-k (row, score), best first."""
        rows, scores = self.top(query, k, language)
        return [(int(r), float(s)) for r, s in zip(rows, scores, strict=True)]

    def document_frequency(self, term: str, language: str) -> tuple[int, int]:
        """(passages of `language` holding the index term, passages of `language`), over all segments."""
        df = n = 0
        for _o, lex, _live in self.parts:
            a, b = lex.document_frequency(term, language)
            df, n = df + a, n + b
        return df, n
