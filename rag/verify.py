"""Answer-type signals: does a sentence carry the kind of fact the question asks for?

Similarity alone cannot tell "How many people attended the visit?" (unanswered) from "When was the visit?"
(answered): both land on the same passage. What the question asks for can: a count wants a number that is
not part of a date, a date wants a date, a question naming a year wants that year, a question about the
*next* event wants a passage that speaks of one. These are signals, never vetoes: `rag.features` turns them
into features and the answer model, trained on public QA data, weighs them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.lang import to_simplified

_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = r"\d{1,2}(?:\s*(?:-|–|to|and)\s*\d{1,2})?"  # "9-10", "20 to 23"
_DATE = re.compile(
    rf"\b{_DAYS}\s+(?:{_MONTHS})\b|\b(?:{_MONTHS})\s+{_DAYS}\b"  # "20 to 23 February", "May 9"
    rf"|\b(?:1\d\d\d|20\d\d)s?\b|\b(?:{_MONTHS})\b|\b(?:century|centuries|decade|BC|AD|BCE|CE)\b"
    r"|\d+\s*[年月日号]|[一二三四五六七八九十]+月|世纪|年代|朝|时期|时代"
    # weekdays and clock times: "on Saturday", "10 am", "18:30", "晚上6点"
    r"|\b(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)days?\b|星期[一二三四五六日天]|周[一二三四五六日]"
    r"|\b\d{1,2}(?:[:.]\d\d)?\s*(?i:[ap]\.?m\b\.?)|(?<![\d:])\d{1,2}:\d\d(?![\d:])|(?:[上下中晚早]午|晚上|早上|凌晨)\d{1,2}[点时]"
)
_AMOUNT = r"(?:\d+(?:/\d+)*|a|an|one|two|three|four|five|six|seven|eight|nine|ten|twelve|several|many|few|some)"
_DURATION = re.compile(
    rf"\b{_AMOUNT}[- ]?(?:hours?|days?|weeks?|months?|years?|decades?|centur(?:y|ies))\b"
    r"|[\d一二三四五六七八九十两几数百]+\s*(?:个)?(?:小时|天|日|周|星期|个月|年|世纪)|\b(?:until|since)\b|直到|至今",
    re.I,
)
_MONEY = re.compile(  # currency signs, codes and names (a closed class), and sums in millions
    r"[€$£¥]|\b(?:EUR|USD|GBP|CNY|RMB|JPY|CHF|HKD)\b|\b(?:euro|dollar|pound|franc|rupee)s?\b|\b(?:yuan|yen|pence|cents?)\b"
    r"|\bmillion\b|\bbillion\b|[\d一二三四五六七八九十百千万亿]\s*[元块]|亿|欧元|美元|英镑|日元|港[元币]|法郎|人民币",
    re.I,
)
_NUMBER_WORDS = r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozens?|hundreds?|thousands?"
# Digits bounded by ASCII only: in "的25名" the Han characters around 25 are word characters to `\b`.
_COUNT = re.compile(
    rf"(?<![A-Za-z0-9_.])\d+(?:[.,]\d+)?(?![A-Za-z0-9_])|[一二三四五六七八九十两百千万]+[名个人位家国项所次届期批]"
    rf"|\b(?:{_NUMBER_WORDS})\b",
    re.I,
)
_ORDINAL = re.compile(
    r"第[一二三四五六七八九十百\d]+|[一二两三四五六七八九十]+次"
    r"|\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(?:st|nd|rd|th))\b",
    re.I,
)
# Who did something: a person (title, honorific) or an organisation.
_PERSON = re.compile(
    r"\b(?:Mr|Ms|Mrs|Dr|Prof|H\.E)\b\.?|先生|女士|阁下|教授|博士"
    r"|\b(?:Director|Minister|Vice-Minister|Chief|Head|Commissioner|Ambassador|Officer|Manager|President|Secretary|Chair)"
    r"|司长|局长|部长|处长|主任|大使(?!馆)|总干事|主席|负责人",
)
_ORGANISATION = re.compile(
    r"\b[A-Z]{2,}\b|\b(?:Organi[sz]ation|Administration|Ministry|Department"
    r"|Office|Commission|Embassy|Embassies|Bureau|Service|Council|Institute|Foundation|Association|Court"
    r"|Procuratorate|University|Centre|Center|Delegation|Station|Team)\b"
    r"|组织|管理局|公安部|部门|[厅局司处署]|办公室|委员会|使馆|大学|基金会|中心|协会|法院|检察院|研究所|代表团|总站|团队|欧盟",
)
# An enumeration of three or more items ("Austria, Belgium, Croatia and…", "奥地利、比利时、克罗地亚"):
# a count can be read off it.
_LIST = re.compile(r"(?:[^,;，、]{2,40}[,，、]\s*){2,}[^,;，、]{2,40}")
_NEXT_Q = re.compile(r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|下一|下届|下次|接替|继任", re.I)
_NEXT_A = re.compile(
    r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|\bfuture\b|下一|下届|下次|接替|继任|即将|今后|未来", re.I
)

# Question patterns, checked in this order; the first match is the expected answer type.
_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("money", re.compile(r"\bbudget\b|how much (?:money|funding)|\bcost\b|预算|多少钱|多少资金|多少经费|金额", re.I)),
    ("duration", re.compile(r"how long|多久|多长时间|有效期", re.I)),
    ("ordinal", re.compile(r"第几|how many times|which time", re.I)),
    ("count", re.compile(r"how many|number of|多少(?![钱资经])|几(?:个|名|位|家|国|人|次)|有几", re.I)),
    (
        "date",
        re.compile(
            r"\bwhen\b|what (?:year|date|day|month|time)\b|which (?:year|day|month)\b|何时|什么时候|几月|几点|哪个月"
            r"|哪[一两二三四五六七八九十几]?个?(?:年|天|日|周|星期)",  # 哪年, 哪一天, 哪两天, 哪几周
            re.I,
        ),
    ),
    ("name", re.compile(r"叫什么名字|什么名字|姓名|\bwhat is the name of\b|\bwhat was the name of\b", re.I)),
    ("agent", re.compile(r"^\s*who\b|\bwho\s+(?:is|was|were|are|did|will|has|had)\b|谁|哪位|哪些人", re.I)),
    ("place", re.compile(r"\bwhere\b|哪里|哪儿|在哪|何处|何地", re.I)),
)


@dataclass(frozen=True, slots=True)
class Need:
    """What a sentence should contain to answer the question."""

    kind: str = "other"  # money, duration, ordinal, count, date, name, agent, place, other
    numbers: tuple[str, ...] = ()  # numbers the question names (years, issue numbers)
    future: bool = False  # the question asks about a next / successor / upcoming event


def need(question: str) -> Need:
    """Read what kind of fact a question asks for."""
    q = to_simplified(question)
    kind = next((name for name, pattern in _TYPES if pattern.search(q)), "other")
    return Need(kind=kind, numbers=tuple(re.findall(r"\d+", q)), future=bool(_NEXT_Q.search(q)))


def _counts(text: str) -> list[str]:
    """Cardinal numbers in the text that are not part of a date, a time span or a list like 24/72/144."""
    text = _DATE.sub(" ", text)
    text = re.sub(r"\d+(?:/\d+)+", " ", text)
    return _COUNT.findall(text)


# A capitalised word inside a sentence, an acronym, a CamelCase word, or a handle ("@tiif").
_EN_NAME_INSIDE = re.compile(r"(?<=[a-z,;:()] )[A-Z][a-z]+|\b[A-Z]{2,}\b|\b[A-Z][a-z]+[A-Z]\w*|(?<!\w)@\w+")
_ZH_NAME_MARKS = re.compile(r"《[^》]+》|[\u4e00-\u9fff]·[\u4e00-\u9fff]|「[^」]+」|“[^”]+”")


def _names_something(sentence: str) -> bool:
    """True when the sentence names someone or something: a capitalised word inside an English sentence, an
    acronym or a handle (@name); in Chinese a title in 《》, a transliterated name (·), or a word CC-CEDICT glosses only
    capitalised (a place, an organisation) or does not know and that starts with a surname (a person)."""
    if _EN_NAME_INSIDE.search(sentence) or _ZH_NAME_MARKS.search(sentence):
        return True
    from rag import cedict
    from rag.lexical import analyze

    words = [w for w in analyze(to_simplified(sentence), "zh") if len(w) >= 2 and not w.isascii()]
    return any(cedict.is_proper_zh(w) or (len(w) <= 3 and not cedict.has(w) and cedict.is_surname(w[0])) for w in words)


def carries(kind: str, sentence: str) -> bool:
    """True when the sentence holds a fact of the kind: a date for "date", a count for "count", …"""
    s = to_simplified(sentence)
    checks = {
        "money": lambda: bool(_MONEY.search(s)),
        "duration": lambda: bool(_DURATION.search(s)),
        "count": lambda: bool(_counts(s) or _LIST.search(s)),
        "ordinal": lambda: bool(_ORDINAL.search(s) or _counts(s)),
        "date": lambda: bool(_DATE.search(s)),
        "name": lambda: _names_something(sentence),
        "agent": lambda: bool(_PERSON.search(s) or _ORGANISATION.search(s)) or _names_something(sentence),
        "place": lambda: _names_something(sentence),
    }
    check = checks.get(kind)
    return True if check is None else check()


@dataclass(frozen=True, slots=True)
class Signals:
    """How well one sentence (read within its passage) fits what the question asks for; 0/1 or a share."""

    type_ok: float  # the question asks for a kind of fact and the sentence carries one
    type_missing: float  # the question asks for a kind of fact and the sentence carries none
    numbers_missing: float  # share of the question's numbers the passage does not name
    future_missing: float  # a question about a next event, a passage that speaks of none


def signals(n: Need, sentence: str, passage: str) -> Signals:
    """The answer-type signals of `sentence` for a question with need `n`."""
    typed = n.kind != "other"
    ok = typed and carries(n.kind, sentence)
    missing = [num for num in n.numbers if num not in passage]
    return Signals(
        type_ok=float(ok),
        type_missing=float(typed and not ok),
        numbers_missing=len(missing) / len(n.numbers) if n.numbers else 0.0,
        future_missing=float(n.future and not _NEXT_A.search(to_simplified(passage))),
    )
