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
_DAYS = r"\d{1,2}(?:\s*(?:-|–|to|and)\s*\d{1,2})?"  # "9-10", "20 to 23"
_DATE = re.compile(
    rf"\b{_DAYS}\s+(?:{_MONTHS})\b|\b(?:{_MONTHS})\s+{_DAYS}\b"  # "20 to 23 February", "May 9"
    rf"|\b(?:1[89]\d\d|20\d\d)\b|\b(?:{_MONTHS})\b|\d+\s*[年月日号]|[一二三四五六七八九十]+月"
)
_DURATION = re.compile(
    r"\d+(?:/\d+)*[- ]?(?:hours?|days?|weeks?|months?|years?)\b|\d+(?:/\d+)*\s*(?:小时|天|日|周|个月|年)"
)
_MONEY = re.compile(
    r"€|\bEUR\b|\beuros?\b|\$|\bUSD\b|\bdollars?\b|\bmillion\b|\bbillion\b|万元|亿|欧元|美元|人民币", re.I
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
    r"\b(?:IOM|NIA|MPS|EU|UN|DG HOME|Europol|Eurojust|EMPACT|Organi[sz]ation|Administration|Ministry|Department"
    r"|Office|Commission|Embassy|Embassies|Bureau|Service|Council|Institute|Foundation|Association|Court"
    r"|Procuratorate|University|Centre|Center|Delegation|Station|Team)\b"
    r"|组织|管理局|公安部|部门|[厅局司处署]|办公室|委员会|使馆|大学|基金会|中心|协会|法院|检察院|研究所|代表团|总站|团队|欧盟",
)
_WHICH = re.compile(r"\b(?i:which)\s+((?:[A-Z][\w-]*\s+){0,3}[a-z][\w-]*)")
_GENERIC_WORDS = (
    "kind kinds type types sort sorts part parts place places year years level levels way ways aspect aspects area"
    " areas day days date dates time times one ones thing things body bodies side sides is are was were did do"
    " does will has have can"
    # category nouns: passages name the members ("DG HOME, Europol"), rarely the category ("institutions")
    " event events institution institutions organisation organisations organization organizations measure"
    " measures activity activities topic topics issue issues step steps action actions"
)
_GENERIC_HEADS = frozenset(_GENERIC_WORDS.split())
_HOW_MANY = re.compile(r"\bhow many\s+((?:[\w'-]+\s+){1,3})", re.I)
_NEXT_Q = re.compile(r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|下一|下届|下次|接替|继任", re.I)
_NEXT_A = re.compile(
    r"\bnext\b|\bsucceed|\bsuccessor|\bupcoming\b|\bfuture\b|下一|下届|下次|接替|继任|即将|今后|未来", re.I
)

# Numbered series: "MMSP II" / "Phase III" / "第三期". A sentence about phase III does not answer for phase II.
_SERIAL_EN = re.compile(r"\b([A-Za-z]{3,})(?:\s+|\s*[-–]\s*Phase\s+)(IV|IX|V?I{1,3}|V|X|\d+)\b(?!-)")
_SERIAL_ZH = re.compile(r"第?([一二三四五六七八九十]|\d+)期")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9, "X": 10}
_HAN_DIGITS = {c: i for i, c in enumerate("一二三四五六七八九十", start=1)}
_PHASE = {"mmsp", "phase", "期"}

# Question patterns, checked in this order; the first match is the expected answer type.
_TYPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("money", re.compile(r"\bbudget\b|how much (?:money|funding)|\bcost\b|预算|多少钱|多少资金|多少经费|金额", re.I)),
    ("duration", re.compile(r"how long|多久|多长时间|有效期", re.I)),
    ("ordinal", re.compile(r"第几|how many times|which time", re.I)),
    ("count", re.compile(r"how many|number of|多少(?![钱资经])|几(?:个|名|位|家|国|人|次)|有几", re.I)),
    (
        "date",
        re.compile(
            r"\bwhen\b|what year|which year|what date|which day|何时|什么时候|哪一年|哪年|几月|哪天|哪几年|哪几天", re.I
        ),
    ),
    ("person", re.compile(r"叫什么名字|什么名字|姓名|\bwhat is the name of\b|\bwhat was the name of\b", re.I)),
    ("agent", re.compile(r"^\s*who\b|\bwho\s+(?:is|was|were|are|did|will|has|had)\b|谁|哪位|哪些人", re.I)),
)


@dataclass(frozen=True, slots=True)
class Need:
    """What a sentence must contain to answer the question."""

    kind: str = "other"  # money, duration, ordinal, count, date, person, agent, other
    numbers: tuple[str, ...] = ()  # numbers the question names (years, issue numbers) that the passage must name
    future: bool = False  # the question asks about a next / successor / upcoming event
    serials: frozenset[tuple[str, int]] = frozenset()  # numbered series the question names ("MMSP II")
    head: str = ""  # the thing a "which X" question asks for ("hotel"); the passage must speak of one
    counted: str = ""  # what an English "how many X" question counts ("embassies")


def need(question: str) -> Need:
    """Read what kind of fact a question asks for."""
    q = to_simplified(question)
    kind = next((name for name, pattern in _TYPES if pattern.search(q)), "other")
    numbers = tuple(re.findall(r"\d+", q))
    return Need(
        kind=kind,
        numbers=numbers,
        future=bool(_NEXT_Q.search(q)),
        serials=serials(q),
        head=which_head(q),
        counted=counted_noun(q) if kind == "count" else "",
    )


def counted_noun(question: str) -> str:
    """What an English count question counts: the last word of "how many X" before its verb, possessives
    resolved ("How many countries' embassies were…" → "embassies"; "How many Chinese officials…" → "officials")."""
    m = _HOW_MANY.search(question)
    if m is None:
        return ""
    words = m.group(1).split()
    noun = ""
    for w in words:
        if w[0].isupper():
            continue
        noun = w
        if not w.endswith("'"):
            break
    return noun.rstrip("'").lower()


def names_a_list_of(counted: str, sentence: str) -> bool:
    """True when the sentence names three or more of what is counted in a list attached to the noun:
    "the Embassies of Austria, Belgium, Croatia…", "奥地利、比利时、克罗地亚…大使馆". A count can be read off it."""
    if not counted:
        return False
    from rag.lexical import stem

    en_list = r"(?:of|from|in)\s+(?:the\s+)?[A-Z][\w-]*(?:,\s+(?:and\s+)?(?:the\s+)?[A-Z][\w-]*){2,}"
    for m in re.finditer(rf"\b([A-Za-z]+)\s+{en_list}", sentence):
        if stem(m.group(1).lower()) == stem(counted):
            return True
    heads = [h for h in chinese_terms(counted) if len(h) >= 2]
    zh_list = r"(?:[\u4e00-\u9fff]{2,8}、){2,}[\u4e00-\u9fff]{2,8}(?:和[\u4e00-\u9fff]{2,8})?"
    return any(re.search(zh_list + re.escape(h), to_simplified(sentence)) for h in heads)


def which_head(question: str) -> str:
    """The noun a "which X" question asks about ("In which hotel…" → "hotel"), skipping capitalised modifiers
    ("Which EU countries" → "countries"); "" for generic nouns (kind, part, place, year…) and other questions."""
    m = _WHICH.search(question)
    if m is None:
        return ""
    for word in m.group(1).split():
        if word[0].isupper() or word.isupper():
            continue  # "Chinese", "EU", "MMSP": a modifier; the noun follows
        return "" if word.lower() in _GENERIC_HEADS else word.lower()
    return ""


def mentions_head(head: str, passage: str) -> bool:
    """True when the passage speaks of `head`, in its own words or (Chinese passages) its CC-CEDICT headwords."""
    from rag.lexical import analyze

    words = set(analyze(passage, "en"))  # each script by its own rules, whatever the language argument says
    if all(w in words for w in analyze(head, "en")):  # "visa-free" → visa, free
        return True
    return any(t in words for t in chinese_terms(head))


def chinese_terms(word: str) -> tuple[str, ...]:
    """The Chinese index terms of an English word through CC-CEDICT ("embassies" → 大使馆 …)."""
    from rag.lexical import Settings, concepts

    return tuple(t for c in concepts(word, "zh", Settings(), passthrough=False) for t, _w in c)


def serials(text: str) -> frozenset[tuple[str, int]]:
    """(series, number) pairs: "MMSP II" → ("phase", 2), "第三期" → ("phase", 3), "World War II" → ("war", 2)."""
    out = set()
    for name, num in _SERIAL_EN.findall(text):
        value = int(num) if num.isdigit() else _ROMAN.get(num)
        if value is not None and (name.lower() in _PHASE or (num not in {"I", "V", "X"} and not num.isdigit())):
            out.add(("phase" if name.lower() in _PHASE else name.lower(), value))
    for num in _SERIAL_ZH.findall(text):
        out.add(("phase", int(num) if num.isdigit() else _HAN_DIGITS[num]))
    return frozenset(out)


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
    if n.kind == "count" and not (_counts(s) or names_a_list_of(n.counted, sentence)):
        return False
    if n.kind == "ordinal" and not (_ORDINAL.search(s) or _counts(s)):
        return False
    if n.kind == "date" and not _DATE.search(s):
        return False
    if n.kind == "person" and not _PERSON.search(s):
        return False
    if n.kind == "agent" and not (_PERSON.search(s) or _ORGANISATION.search(s)):
        return False
    if n.future and not _NEXT_A.search(to_simplified(passage)):
        return False
    if n.head and not mentions_head(n.head, passage):
        return False
    if n.serials:
        named = serials(s)
        for series, number in n.serials:
            others = {v for k, v in named if k == series}
            if others and number not in others:
                return False  # speaks of another phase of the series only
    return all(num in passage for num in n.numbers)
