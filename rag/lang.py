"""Language detection and Traditional→Simplified normalisation for English / Chinese text."""

from __future__ import annotations

import re
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")


def han_ratio(text: str) -> float:
    """Share of Han characters among Han + Latin letters (0.0 for text with neither)."""
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    return han / (han + latin) if han + latin else 0.0


def is_chinese(text: str) -> bool:
    """True when the text is mostly Chinese.

    A Han character carries roughly a word of meaning, a Latin letter a fifth of one, so a
    question such as "MMSP 项目是什么？" counts as Chinese.
    """
    han = len(_HAN.findall(text))
    latin = len(_LATIN.findall(text))
    return han > 0 and han * 5 >= latin


@lru_cache(maxsize=4096)
def to_simplified(text: str) -> str:
    """Convert Traditional Chinese characters to Simplified; other text is unchanged."""
    if not _HAN.search(text):
        return text
    import zhconv  # small, pure Python; imported lazily to keep import time low

    return zhconv.convert(text, "zh-hans")


def to_traditional(text: str) -> str:
    """Convert Simplified Chinese characters to Traditional (for answers to Traditional questions)."""
    if not _HAN.search(text):
        return text
    return _s2t().convert(text)


@lru_cache(maxsize=1)
def _s2t():  # type: ignore[no-untyped-def]
    """OpenCC's phrase-aware Simplified→Traditional converter: 签证 → 簽證, where zhconv writes 籤證."""
    import opencc

    return opencc.OpenCC("s2t")


def detect(text: str) -> str:
    """Return "en", "zh" (Simplified) or "zh-hant" (Traditional)."""
    if not is_chinese(text):
        return "en"
    han = "".join(_HAN.findall(text))
    return "zh-hant" if to_simplified(han) != han else "zh"


_KANA_HANGUL = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uac00-\ud7af\u1100-\u11ff]")


def supported(text: str) -> bool:
    """True for text written in English or Chinese: it has Latin letters or Han characters, and they outnumber
    the letters of every other script (Cyrillic, Arabic, Hangul, kana…). Emoji- or punctuation-only text is not."""
    ours = len(_HAN.findall(text)) + len(_LATIN.findall(text))
    if not ours:
        return False
    if _KANA_HANGUL.search(text):  # Japanese or Korean, even when written with some Han characters
        return False
    others = sum(1 for c in text if c.isalpha() and not _HAN.match(c) and not _LATIN.match(c))
    return ours > others


def base(language: str) -> str:
    """Collapse a detected language to its script-independent base: "zh-hant" → "zh"."""
    return "zh" if language.startswith("zh") else language
