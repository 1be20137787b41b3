"""The focus of a wh-question: the noun it asks an instance of, and whether a sentence names one.

"Which *city* hosted the seminar?" is answered by a sentence naming Hangzhou, "在哪家*酒店*举行？" only by one
naming a hotel. A sentence that names the seminar but no city, or no hotel, is a near miss that similarity
and coverage read as an answer. The focus is read off the question's grammar, the same in every archive: the
head of the noun phrase after an interrogative determiner (which / what / how many; 哪 / 什么 / 几 / 多少 and a
classifier), or before "是什么" / "是哪一个" at the end of a Chinese question. A sentence names an instance of it
when it contains the word (or a CC-CEDICT translation), or a word whose CC-CEDICT gloss does: 杭州 is glossed
"… city …", 海南大学 "Hainan University", Sanya (三亚) "… city …". What that is worth is learned: `focus_missing` is
one of the answer model's features, never a veto.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from rag import cedict
from rag.lang import to_simplified
from rag.lexical import EN_STOPWORDS, stem
from rag.verify import need

_EN_WORD = re.compile(r"[A-Za-z][A-Za-z-]*")
_HAN = re.compile(r"[\u3400-\u9fff]+")
_TYPED = frozenset({"date", "duration", "money"})
_COPULAS = frozenset({"is", "was", "are", "were"})
_ARTICLES = frozenset({"the", "a", "an"})
_ZH_ASKING = ("哪", "什么", "几", "多少")
_NOUNISH = ("n", "s", "vn", "j")  # jieba tags of nouns, places, verbal nouns, abbreviations
# jieba tags that may stand between the interrogative and its noun: numerals, classifiers, particles, pronouns,
# adjectives, distinguishing words (中方, 男性) and locality words: "多少名*中方*代表" asks for 代表
_BEFORE_NOUN = ("m", "q", "u", "r", "a", "b", "f")
_COUNT_GLOSSES = frozenset({"number", "amount", "quantity"})  # a word glossed so names the count it asks (人数)
_BEST_GLOSS = 0.9  # glosses within 10% of a headword's best count as its meaning


@dataclass(frozen=True, slots=True)
class Focus:
    """What the question asks an instance of, as English stems and Simplified Chinese words."""

    word: str = ""  # as the question writes it; "" when the question has no focus
    en: frozenset[str] = frozenset()
    zh: frozenset[str] = frozenset()


def focus(question: str) -> Focus:
    """The question's focus: "Which NIA department …" → department, "会议语言是什么" → 语言; Focus() if none.

    Questions for a date, a time span or an amount have none: "什么时候", "which year", "多少钱"
    name the kind of fact, which `rag.verify`'s answer-type signals read."""
    q = to_simplified(question)
    if need(q).kind in _TYPED:
        return Focus()
    word = _english_head(q) or _chinese_head(q)
    if not word:
        return Focus()
    if word.isascii():
        return Focus(
            word, frozenset({stem(word.lower())}), frozenset(h for h in cedict.en_to_zh(word, 3) if len(h) > 1)
        )
    if _COUNT_GLOSSES & set(_best_glosses(word)):  # "参会人数是多少" asks a count, as "how many" does
        return Focus()
    return Focus(word, frozenset(stem(g) for g in _best_glosses(word)), frozenset({word}))


def named_in(f: Focus, sentence: str) -> bool:
    """True when the sentence names the focus or an instance of it (through CC-CEDICT glosses)."""
    s = to_simplified(sentence)
    if any(w in s for w in f.zh):
        return True
    words = _EN_WORD.findall(s)
    if f.en & {stem(w.lower()) for w in words}:
        return True
    heads = [h for w in words if cedict.is_proper_en(w) for h in _name_heads(w)]
    heads += [w for run in _HAN.findall(s) for w, _flag in _tagged(run) if len(w) > 1]
    return any(f.en & _gloss_stems(h) for h in heads)


def _english_head(q: str) -> str:
    """The last noun of the noun phrase after which / what (is the) / how many / what number of. The phrase
    ends at a word that can be neither a noun nor an adjective (lemminflect's lexicon: "hosted", "took",
    "held"), at a name after a common word ("Which organisation implements MMSP III"), or before a word
    followed by an article ("hosts the")."""
    words = _EN_WORD.findall(q)
    lower = [w.lower() for w in words]
    for i, w in enumerate(lower):
        if w in ("which", "what") or (w == "many" and i and lower[i - 1] == "how"):
            j = i + 1
            if w == "what" and j < len(lower) and lower[j] in _COPULAS:
                j += 1
                if j >= len(lower) or lower[j] not in _ARTICLES:
                    return ""
                j += 1
            run: list[str] = []
            while j < len(lower) and lower[j] not in EN_STOPWORDS and _can_modify_noun(words[j]):
                if run and words[j][0].isupper() and run[-1][0].islower():
                    break
                run.append(words[j])
                j += 1
                if lower[j - 1] == "number" and j < len(lower) and lower[j] == "of":  # "what number of embassies"
                    run, j = [], j + 1
            if len(run) > 1 and j < len(lower) and lower[j] in _ARTICLES:
                run.pop()
            while run and not _can_be_noun(run[-1]):  # "how many foreign students": the head is a noun
                run.pop()
            return run[-1] if run else ""
    return ""


def _can_be_noun(word: str) -> bool:
    readings = _readings(word)
    return not readings or "NOUN" in readings or "PROPN" in readings or word[0].isupper()


def _can_modify_noun(word: str) -> bool:
    """A noun, or an adjective that may stand before one ("foreign students", "visa-free transit policy")."""
    return _can_be_noun(word) or "ADJ" in _readings(word)


@lru_cache(maxsize=4096)
def _readings(word: str) -> frozenset[str]:
    """The parts of speech lemminflect's lexicon allows the word (read once per word)."""
    from lemminflect import getAllLemmas

    return frozenset(getAllLemmas(word.lower()))


def _chinese_head(q: str) -> str:
    tagged = [t for run in _HAN.findall(q) for t in _tagged(run)]
    for i, (w, _flag) in enumerate(tagged):
        if not w.startswith(_ZH_ASKING) or w.startswith("多少钱"):
            continue
        run: list[str] = []
        for nxt, flag in tagged[i + 1 : i + 5]:
            if flag.startswith(_NOUNISH) and len(nxt) > 1:
                run.append(nxt)
            elif run or not flag.startswith(_BEFORE_NOUN):
                break
        if run:
            return run[-1]
        if i >= 2 and tagged[i - 1][0] == "是" and tagged[i - 2][1].startswith(_NOUNISH):
            return tagged[i - 2][0]  # "会议语言是什么", "机构是哪一个"
        return ""
    return ""


def _name_heads(name: str) -> tuple[str, ...]:
    """The CC-CEDICT names an English name stands for: those read as it in pinyin (Hangzhou → 杭州), else the
    best two headwords glossed with it (Brussels → 布鲁塞尔)."""
    return cedict.names_read_as(name) or tuple(cedict.en_to_zh(name, 2))


@lru_cache(maxsize=4096)
def _best_glosses(word: str) -> tuple[str, ...]:
    weighted = cedict.zh_to_en_weighted(word)
    return tuple(g for g, w in weighted if w >= _BEST_GLOSS * weighted[0][1]) if weighted else ()


@lru_cache(maxsize=16384)
def _gloss_stems(word: str) -> frozenset[str]:
    return frozenset(stem(g) for g, _w in cedict.zh_to_en_weighted(word))


def _tagged(run: str) -> tuple[tuple[str, str], ...]:
    from rag.scope import tagged

    return tagged(run)
