"""Out-of-scope questions: a question about a name the newsletters never mention cannot be answered from them.

Similarity cannot see this: "Who won the 2022 World Cup?" lands on the passage that mentions 2022 with a
respectable score. The name "World Cup", found in no newsletter in either language, shows the newsletters
cannot say. Likewise a question none of whose content words occurs anywhere ("怎么做红烧肉？") is off topic.
Names are capitalised runs in English and jieba's proper-noun tags in Chinese; a name counts as
mentioned when it, or its CC-CEDICT translation, occurs in any indexed document. A name the dictionary cannot
translate is unknown when the archive holds English text that never writes it (editions of one issue name the same
people), and given the benefit of the doubt in a Chinese-only archive, which may transliterate it.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from rag import cedict
from rag.lang import to_simplified

# Capitalised runs ("World Cup", "Paris", "MMSP II"), joined by spaces or hyphens.
_EN_NAME = re.compile(r"[A-Z][A-Za-z0-9]*(?:[ -](?:[A-Z][A-Za-z0-9]*|I{1,3}|IV|V))*")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;]\s+|[\"“(]\s*)$")
_HAN = re.compile(r"[\u3400-\u9fff·]+")
_LATIN_WORD = re.compile(r"[a-z0-9]+")
_PROPER_TAGS = ("nr", "ns", "nt", "nz")
_COMMON_ZIPF = 5.5  # "city", "world", "public": too common to show that a name is mentioned


@dataclass(frozen=True, slots=True)
class Corpus:
    """Every indexed document's text, lowercased and in Simplified script, for mention checks."""

    text: str
    languages: frozenset[str]  # "en", "zh"
    words: tuple[str, ...] = field(init=False)  # the distinct Latin-script words of the text, sorted

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(sorted(set(_LATIN_WORD.findall(self.text)))))

    @classmethod
    def of(cls, texts: Iterable[tuple[str, str]]) -> Corpus:
        """From (text, language) pairs."""
        parts, langs = [], set()
        for text, language in texts:
            parts.append(to_simplified(text).lower())
            langs.add("zh" if language.startswith("zh") else "en")
        return cls("\n".join(parts), frozenset(langs))

    def mentions(self, term: str) -> bool:
        return mentioned(self, term)

    def has_text(self, term: str) -> bool:
        """`term` (lowercased, Simplified) in the text: as whole words when ASCII, anywhere otherwise."""
        if term.isascii():
            return re.search(rf"(?<![a-z0-9]){re.escape(term)}(?![a-z0-9])", self.text) is not None
        return term in self.text

    def has_word_starting(self, prefix: str, whole: bool = False) -> bool:
        """True when a word of the text starts with `prefix` (or, with `whole`, is it)."""
        i = bisect.bisect_left(self.words, prefix)
        return i < len(self.words) and (self.words[i] == prefix if whole else self.words[i].startswith(prefix))


class Archive(Protocol):
    """What the name checks ask of the indexed documents: `Corpus` scans their text; `rag.mentions.Mentions`
    answers from each segment's postings."""

    @property
    def languages(self) -> frozenset[str]: ...

    def mentions(self, term: str) -> bool: ...

    def has_text(self, term: str) -> bool: ...

    def has_word_starting(self, prefix: str, whole: bool = False) -> bool: ...


def mentioned(archive: Archive, term: str) -> bool:
    """True when the archive mentions `term`: a Latin word as a word or, for a long one, a word sharing its
    first letters; anything else as it is written (whole words when ASCII)."""
    term = to_simplified(term).lower().strip()
    if not term:
        return True
    if _LATIN_WORD.fullmatch(term):  # "Korean" is mentioned by "Korea", "Japanese" by "Japan"
        return archive.has_word_starting(term, whole=True) or (
            len(term) > 5 and archive.has_word_starting(term[: max(4, len(term) - 3)])
        )
    return archive.has_text(term)


def english_names(question: str) -> list[str]:
    """Capitalised runs that read as names.

    English capitalises names, and the first word of every sentence. The first word of a run opening a
    sentence belongs to a name only when CC-CEDICT writes it capitalised only ("Japan", not "Outline" or
    "Briefly"): "Which EU countries" → "EU", "Outline IOM's view" → "IOM".
    """
    out = []
    for m in _EN_NAME.finditer(question):
        words = m.group().replace("-", " ").split()
        if _SENTENCE_START.search(question[: m.start()]) and not cedict.is_proper_en(words[0]):
            words = words[1:]
        if not words or (len(words) == 1 and len(words[0]) < 2):
            continue
        out.append(" ".join(words))
    return out


@lru_cache(maxsize=1)
def _posseg():  # type: ignore[no-untyped-def]
    import logging

    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg.POSTokenizer(jieba.Tokenizer())


@lru_cache(maxsize=1024)
def tagged(run: str) -> tuple[tuple[str, str], ...]:
    """jieba's (word, part-of-speech) pairs for a run of Han characters."""
    return tuple((p.word, p.flag) for p in _posseg().cut(run))


def chinese_names(question: str) -> list[str]:
    """Proper nouns (people, places, organisations, other names) of two or more characters.

    jieba's tagger proposes them; CC-CEDICT confirms: a word it glosses in lower case is a common noun
    (城市 "city", 国家 "country"), one it glosses only capitalised (杭州, 世界杯) or does not know (毛旭) a name.
    """
    out = []
    for run in _HAN.findall(to_simplified(question)):
        out += [
            w
            for w, flag in tagged(run)
            if flag.startswith(_PROPER_TAGS) and len(w) >= 2 and (cedict.is_proper_zh(w) or not cedict.has(w))
        ]
    return out


def unknown_names(question: str, corpus: Archive) -> tuple[str, ...]:
    """The names a question asks about that no indexed document mentions, in either language."""
    unknown = []
    for name in english_names(question):
        if _known_en(name, corpus) or _known_in_parts(name.split(), corpus):
            continue
        if not [h for h in cedict.en_to_zh(name, 3) if len(h) >= 2] and "en" not in corpus.languages:
            continue  # an untranslatable name may be transliterated in a Chinese-only archive
        unknown.append(name)
    for name in chinese_names(question):
        if corpus.mentions(name):
            continue
        glosses = _key_glosses(name)
        if any(corpus.mentions(g) for g in glosses):
            continue
        if not glosses and "en" in corpus.languages:
            continue
        unknown.append(name)
    return tuple(dict.fromkeys(unknown))


def _known_en(name: str, corpus: Corpus) -> bool:
    """An English name, or its CC-CEDICT translation, occurs in the archive. A word CC-CEDICT writes only
    capitalised (a name) counts only by translations that are names too: "Japan" by 日本, not by 内地, a
    headword CC-CEDICT also glosses "Japan" among common meanings ("inland", "mainland")."""
    if corpus.mentions(name):
        return True
    name_only = " " not in name and cedict.is_proper_en(name)
    heads = [h for h in cedict.en_to_zh(name, 3) if len(h) >= 2 and (not name_only or cedict.is_proper_zh(h))]
    return any(corpus.mentions(h) for h in heads)


def _known_in_parts(words: list[str], corpus: Corpus) -> bool:
    """A run of capitalised words that joins names the archive mentions, each whole ("IOM Director General" =
    "IOM" + "Director General", "MMSP Phase III"): cut greedily into the longest known parts from the left.
    "World Cup" stays unknown in an archive that never writes "cup"."""
    i = 0
    while i < len(words):
        j = next((j for j in range(len(words), i, -1) if _known_en(" ".join(words[i:j]), corpus)), i)
        if j == i:
            return False
        i = j
    return len(words) > 1


def _key_glosses(name: str) -> list[str]:
    """The best-weighted English words glossing a Chinese name, without very common words.

    杭州 → hangzhou, capital, china (not "city"); 世界杯 → cup (not "world"); 欧盟 → eu.
    """
    weighted = cedict.zh_to_en_weighted(name)
    if not weighted:
        return []
    from wordfreq import zipf_frequency

    best = [w for w, weight in weighted if weight >= weighted[0][1]]
    specific = [w for w in best if zipf_frequency(w, "en") < _COMMON_ZIPF]
    return specific or best


def content_words(question: str) -> list[str]:
    """The question's content words: English words of three or more letters and Chinese words of two or more
    characters, question words and stopwords left out."""
    from rag.lexical import EN_STOPWORDS, ZH_STOPWORDS

    out = [w for w in re.findall(r"[a-z]{3,}", question.lower()) if w not in EN_STOPWORDS]
    for run in _HAN.findall(to_simplified(question)):
        out += [w for w, _flag in tagged(run) if len(w) >= 2 and w not in ZH_STOPWORDS]
    return list(dict.fromkeys(out))


def off_topic(question: str, corpus: Archive) -> tuple[str, ...]:
    """The question's content words when not one of them occurs in any indexed document, in either language
    ("怎么做红烧肉？", "How do I bake sourdough bread?"); () when the question touches the archive at all."""
    words = content_words(question)
    for w in words:
        if corpus.mentions(w) or (w.isascii() and _mentions_inflected(w, corpus)):
            return ()
        translations = [h for h in cedict.en_to_zh(w, 3) if len(h) >= 2] if w.isascii() else _key_glosses(w)
        if any(corpus.mentions(t) for t in translations):
            return ()
    return tuple(words)


def _mentions_inflected(word: str, corpus: Archive) -> bool:
    """ "attended" finds "attend", "seminars" finds "seminar": the word's stem as a word prefix."""
    from rag.lexical import stem

    root = stem(word)
    return len(root) >= 3 and corpus.has_word_starting(root)
