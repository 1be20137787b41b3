"""Answerability checks: does a sentence carry the kind of fact the question asks for?

Similarity alone cannot tell "How many people attended the Hainan visit?" (unanswered) from "When was the
Hainan visit?" (answered): both land on the same passage. What the question asks for can: a count needs a
number that is not part of a date, a date needs a date, a question naming a year needs that year, and a
question about the *next* event needs a passage that speaks of one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.lang import to_simplified

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DATE = re.compile(rf"\b(?:1[89]\d\d|20\d\d)\b|\b(?:{_MONTHS})\b|\d+\s*[年月日]|[一二三四五六七八九十]+月")
_DURATION = re.compile(
    r"\d+(?:/\d+)*[- ]?(?:hours?|days?|weeks?|months?|years?)\b|\d+(?:/\d+)*\s*(?:小时|天|日|周|个月|年)"
)
_MONEY = re.compile(
    r"€|\bEUR\b|\beuros?\b|\$|\bUSD\b|\bdollars?\b|\bmillion\b|\bbillion\b|万元|亿|欧元|美元|人民币", re.I
)
_NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?"
_COUNT = re.compile(
    rf"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])|[一二三四五六七八九十两百千万]+[名个人位家国项所]|\b(?:{_NUMBER_WORDS})\b",
    re.I,
)
_NEXT_Q = re.compile(r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|下一|下届|下次|接替|继任", re.I)
_NEXT_A = re.compile(
    r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|\bfuture\b|下一|下届|下次|接替|继任|即将|今后|未来", re.I
)

# Question patterns, checked in this order; the first match is the expected answer type.
_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("money", re.compile(r"\bbudget\b|how much (?:money|funding)|\bcost\b|预算|多少钱|多少资金|多少经费|金额", re.I)),
    ("duration", re.compile(r"how long|多久|多长时间|有效期", re.I)),
    ("count", re.compile(r"how many|number of|多少(?![钱资经])|几(?:个|名|位|家|国|人|次)|有几", re.I)),
    (
        "date",
        re.compile(
            r"\bwhen\b|what year|which year|what date|which day|何时|什么时候|哪一年|哪年|几月|哪天|哪几年|哪几天", re.I
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Need:
    """What a sentence must contain to answer the question."""

    kind: str = "other"  # money, duration, count, date, other
    numbers: tuple[str, ...] = ()  # numbers the question names (years, issue numbers) that the passage must name
    future: bool = False  # the question asks about a next / successor / upcoming event


def need(question: str) -> Need:
    """Read what kind of fact a question asks for."""
    q = to_simplified(question)
    kind = next((name for name, pattern in _TYPES if pattern.search(q)), "other")
    numbers = tuple(re.findall(r"\d+", q))
    return Need(kind=kind, numbers=numbers, future=bool(_NEXT_Q.search(q)))


def _counts(text: str) -> list[str]:
    """Cardinal numbers in the text that are not part of a date, a time span or a list like 24/72/144."""
    text = _DATE.sub(" ", text)
    text = re.sub(r"\d+(?:/\d+)+", " ", text)
    return _COUNT.findall(text)


def satisfies(n: Need, sentence: str, passage: str) -> bool:
    """True when `sentence` (read within its `passage`) can answer a question with need `n`."""
    s = to_simplified(sentence)
    if n.kind == "money" and not _MONEY.search(s):
        return False
    if n.kind == "duration" and not _DURATION.search(s):
        return False
    if n.kind == "count" and not _counts(s):
        return False
    if n.kind == "date" and not _DATE.search(s):
        return False
    if n.future and not _NEXT_A.search(to_simplified(passage)):
        return False
    return all(num in passage for num in n.numbers)
