"""Follow-up questions without an LLM: "And when was it held?" is read with the key terms of the turn before.

A follow-up leans on what was just asked. The previous question (itself resolved the same way, so a chain of
follow-ups keeps its topic) lends its content words that the new question does not already have, the rarest
in the archive first, judged by the archive's own document frequencies. No phrase list, no pronoun list: the
mechanism is the same in any language the lexical analyser reads. The words are appended to the question for
retrieval; the question's own words still decide what kind of fact is asked for.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from rag import lexical
from rag.lang import base, detect
from rag.types import Turn

MAX_TERMS = 6  # carried words at most
DEPTH = 3  # earlier questions read, at most

_LATIN = re.compile(r"[A-Za-z][A-Za-z0-9'’-]*|\d[\d,.]*")


def content_words(text: str) -> list[str]:
    """The text's words as written, in order, without stopwords: Latin words and numbers, jieba words for Han."""
    out: list[str] = []
    for han, run in _runs(text):
        if han:
            out += [w for w in lexical._jieba().cut(run) if w.strip() and w not in lexical.ZH_STOPWORDS]
        else:
            out += [w for w in _LATIN.findall(run) if w.lower() not in lexical.EN_STOPWORDS]
    return list(dict.fromkeys(out))


_HAN_RUNS = re.compile(r"([\u3400-\u9fff\uf900-\ufaff]+)|[^\u3400-\u9fff\uf900-\ufaff]+")


def _runs(text: str) -> list[tuple[bool, str]]:
    return [(m.group(1) is not None, m.group()) for m in _HAN_RUNS.finditer(text)]


def key_terms(
    previous: str, question: str, lexical_index: lexical.LexicalIndex | None, limit: int = MAX_TERMS
) -> list[str]:
    """Words of `previous` that `question` lacks, rarest in the archive first (ties: in order), at most `limit`."""
    have = set(lexical.analyze(question, detect(question)))
    language = base(detect(previous))
    candidates = []
    for i, word in enumerate(content_words(previous)):
        tokens = [t for t in lexical.analyze(word, language) if t not in have]
        if not tokens:
            continue
        candidates.append((-_idf(tokens, language, lexical_index), i, word))
    chosen = sorted(candidates)[:limit]
    return [w for _s, _i, w in sorted(chosen, key=lambda c: c[1])]


def _idf(tokens: Sequence[str], language: str, index: lexical.LexicalIndex | None) -> float:
    if index is None:
        return 1.0
    best = 0.0
    for t in tokens:
        df, n = index.document_frequency(t, language)
        if n:
            best = max(best, math.log1p((n - df + 0.5) / (df + 0.5)))
    return best


def resolve(question: str, history: Sequence[Turn], lexical_index: lexical.LexicalIndex | None) -> str:
    """The question as retrieval should read it: itself, plus the key terms of the previous questions."""
    previous = [t.question for t in history if t.question.strip()][-DEPTH:]
    if not previous:
        return question
    context = previous[0]
    for earlier in previous[1:]:
        context = _join(earlier, key_terms(context, earlier, lexical_index))
    terms = key_terms(context, question, lexical_index)
    return _join(question, terms)


def _join(question: str, terms: Sequence[str]) -> str:
    """The question and the carried words; capitalised words are lowered (acronyms kept), so that the answer
    stage's scope check does not read a run of carried words ("Seminar Migrant Integration") as a name the
    newsletters never mention."""
    carried = [t if t.isupper() else t.lower() for t in terms]
    return question.rstrip() + " " + " ".join(carried) if carried else question
