"""Clean extracted newsletter text: repair PDF faults, rebuild paragraphs, turn banners into sections.

Plain text (txt, pdf) gets the PDF repairs: letter-spaced runs, words split by stray spaces (decided by
English word frequencies), hyphenated line ends, hard wraps, and ALL-CAPS banner lines that become section
names. Markdown-like text (md, and html/docx, which ingest writes with "## " / "### " headings) is authored,
so it only gets its paragraphs normalised; `#`/`##` lines are banners and `###` lines are article headings.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from itertools import groupby

from rag.lang import base, detect
from rag.types import Document, Meta, RawDocument, Section

# ingest writes html and docx headings as "## " / "### " lines, so they read like Markdown
_MARKDOWN_FORMATS = frozenset({"md", "html", "docx"})

# --------------------------------------------------------------------------- tuning
# Costs are in Zipf units (log10 of frequency per billion words): a word costs 9 - zipf.
_MERGE_PENALTY = 3.0  # per removed space; 1.5 would merge "may be" → "maybe" (5.05 < 5.23)
_MIN_MERGED_ZIPF = 2.5  # a merged word must be at least this common
_UNKNOWN_COST = 12.0  # a piece wordfreq has never seen ("tments", "imina")
_NAME_COST = 5.0  # capitalised pieces are names often missing from wordfreq: never expensive
_MAX_PIECES = 6  # longest run of pieces one word may be rebuilt from
_KNOWN_ZIPF = 3.0  # "is a real word" for hyphen joins, letter-spaced runs and banner words
_HEADING_MAX = 140  # an article heading is shorter than this
_BANNER_MAX_WORDS = 5
_BANNER_JOIN = " — "  # adjacent banners ("INFOBITES", "IOM CHINA NEWS") become one section name

# --------------------------------------------------------------------------- character classes
_L = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"  # Latin letters, with accents
_LATIN = re.compile(f"[{_L}]")
_PIECE = re.compile(f"([(\\[\"'“‘]*)([{_L}]+(?:['’][{_L}]+)*)([)\\]\"'”’.,;:!?]*)")
_SPACED = re.compile(f"[{_L}'’]{{1,2}}")  # one unit of a letter-spaced run: "e", "ro", "'"
_TAIL_WORD = re.compile(f"[{_L}]+$")
_HEAD_WORD = re.compile(f"[{_L}]+")
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u31a0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f]"
)
_BANNER = re.compile("[A-Z0-9\u00c0-\u00d6\u00d8-\u00de]+(?: [A-Z0-9\u00c0-\u00d6\u00d8-\u00de]+)*")
_ENDS_SENTENCE = re.compile("[.!?;:。！？；：…][\"'”’)\\]]*$")
_BULLETS = ("•", "●", "▪", "◦", "‣", "■", "□", "➢", "✓", "\uf0b7")  # U+F0B7: Symbol-font bullet
_ASCII_ITEM = re.compile(r"[-*+] \S")  # "- item" in plain text, after a finished line or another item

# --------------------------------------------------------------------------- normalisation
_LINE_BREAK = re.compile("\r\n|[\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_SOFT_HYPHEN_EOL = re.compile("\u00ad[^\\S\n]*\n")
_SPACE = re.compile("[^\\S\n]")  # every whitespace character but newline: NBSP, tab, ideographic space…
_INVISIBLE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u00ad\u200b\u2060\ufeff]")
_SPACES = re.compile(" {2,}")

# --------------------------------------------------------------------------- markdown
_MD_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ ]+(.*?))?(?:[ ]+#+)?[ ]*")
_MD_ITEM = re.compile(r" {0,3}(?:[-*+•]|\d{1,9}[.)])(?: |$)| {0,3}\|")  # list items, table rows
_MD_RULE = re.compile(r" {0,3}(?:(?:-[ ]*){3,}|(?:\*[ ]*){3,}|(?:_[ ]*){3,}|={3,})")


def clean(raw: RawDocument) -> Document:
    """Turn a raw document into clean text (paragraphs joined by one blank line) with its sections."""
    text = _normalise(raw.text)
    if raw.fmt in _MARKDOWN_FORMATS:
        paras, bounds = _markdown(text)
    else:
        paras, bounds = _plain_sections(_plain_paragraphs(text))
    body, sections = _assemble(paras, bounds)
    return Document(
        doc_id=raw.doc_id,
        text=body,
        meta=raw.meta,
        language=_language(raw.meta.language or detect(body)),
        sections=sections,
        content_hash=_content_hash(body, raw.meta, sections),
        path=raw.path,
        links=raw.links,
    )


def _normalise(text: str) -> str:
    """NFC, "\\n" line breaks, plain spaces, no control or invisible characters (lines strip their own)."""
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAK.sub("\n", text)
    text = _SOFT_HYPHEN_EOL.sub("-\n", text)  # a soft hyphen at a line end is a hyphenation point
    text = _SPACE.sub(" ", text)
    return _INVISIBLE.sub("", text)


def _language(tag: str) -> str:
    """Base language of a tag or detection: "zh-hant" → "zh", "en-GB" → "en"."""
    return base(tag.lower()).replace("_", "-").split("-")[0]


def _content_hash(text: str, meta: Meta, sections: tuple[Section, ...]) -> str:
    """sha256 of text, metadata and sections: editing any of them (a banner name too) forces a reindex."""
    payload = {"text": text, "meta": asdict(meta), "sections": [asdict(s) for s in sections]}
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- plain text (PDF extraction)


@dataclass(frozen=True, slots=True)
class _Para:
    """A joined paragraph of plain text and the page/column block it was printed in."""

    text: str
    block: int
    page: bool  # the block starts at a line with a leading space (a new page or column)
    banner: bool


def _plain_paragraphs(text: str) -> list[_Para]:
    """Repair each line, then join hard-wrapped lines into paragraphs, noting page/column blocks.

    Blank lines, bullets ("•"; "- ", "* " or "+ " after a finished line or another item) and lines with a
    leading space (the extractor's mark of a new page or column) start paragraphs; a blank line after a line
    that ends in a space mid-sentence does not ("Airport, Hainan ⏎⏎ University"): the extractor put a column
    break inside the sentence.
    """
    paras: list[_Para] = []
    lines: list[str] = []
    block, page = 0, False
    gap = open_end = prev_indented = in_item = False
    for raw_line in text.split("\n"):
        content = raw_line.strip(" ")
        if not content:
            gap = True
            continue
        indented = raw_line.startswith(" ")
        new_block = indented and not prev_indented  # an indented file is not a page per line
        prev_indented = indented
        item = _ASCII_ITEM.match(content) is not None
        # "- China" after "EU" is a wrapped "EU - China"; after "Found:" or another item, it is a list item
        bullet = content.startswith(_BULLETS) or (item and (in_item or not lines or _ENDS_SENTENCE.search(lines[-1])))
        line = _repair_line(content)
        continues = open_end and line[0].isalnum() and any(c.islower() for c in line)
        if lines and (new_block or bullet or (gap and not continues)):
            paras.append(_plain_para(lines, block, page))
            lines = []
        if not lines:
            in_item = item
        if new_block:
            block, page = block + 1, True
        lines.append(line)
        open_end = raw_line.endswith(" ") and not _ENDS_SENTENCE.search(content)
        gap = False
    if lines:
        paras.append(_plain_para(lines, block, page))
    return paras


def _plain_para(lines: list[str], block: int, page: bool) -> _Para:
    """A paragraph from its repaired lines."""
    text = _join_lines(lines)
    return _Para(text, block, page, _is_banner(text))


def _plain_sections(paras: list[_Para]) -> tuple[list[str], dict[int, tuple[str, str]]]:
    """Drop banners from the text and decide where each one's section starts.

    This PDF prints banners in a sidebar, extracted after the first column of the page's article: a page's
    first banner applies from the page start, later ones from their own position. Banners left at the very
    end of a page (nothing after them) label the page's first article, so they take the page start and
    the page's first banner falls back to its own position. Outside pages (text before the first marked
    page) every banner applies from its own position.
    """
    kept: list[str] = []
    bounds: dict[int, tuple[str, str]] = {}
    for _, items in groupby(paras, key=lambda p: p.block):
        block = list(items)
        start = len(kept)
        groups: list[tuple[str, int]] = []  # (banner name, index of the paragraph after it)
        pending: list[str] = []
        for p in block:
            if p.banner:
                pending.append(p.text)
                continue
            if pending:
                groups.append((_BANNER_JOIN.join(pending), len(kept)))
                pending = []
            kept.append(p.text)
        trailing = _BANNER_JOIN.join(pending)
        on_page = block[0].page
        if trailing:
            # own position if not on a page: the next block's first paragraph, which it then labels
            bounds[start if on_page else len(kept)] = (trailing, "")
        for i, (name, at) in enumerate(groups):
            from_page_start = on_page and i == 0 and not trailing
            bounds[start if from_page_start else at] = (name, _heading(kept[at]))
    return kept, bounds


def _heading(paragraph: str) -> str:
    """The paragraph if it reads as an article heading (short, no sentence end), else ""."""
    if len(paragraph) >= _HEADING_MAX or _ENDS_SENTENCE.search(paragraph):
        return ""
    if paragraph.startswith(_BULLETS) or paragraph[0].islower():
        return ""
    return paragraph


def _is_banner(paragraph: str) -> bool:
    """True for a short ALL-CAPS line with a real word in it ("MMSP II EVENTS", not "IOM" or "MMSP II")."""
    if not _BANNER.fullmatch(paragraph) or not any(c.isalpha() for c in paragraph):
        return False
    words = paragraph.split(" ")
    if len(words) > _BANNER_MAX_WORDS:
        return False
    return any(w.isalpha() and (len(w) >= 7 or (len(w) >= 4 and _zipf(w.lower()) >= _KNOWN_ZIPF)) for w in words)


def _join_lines(lines: list[str]) -> str:
    """Join hard-wrapped lines: hyphenated line ends by word evidence, CJK without a space."""
    out = lines[0]
    for nxt in lines[1:]:
        if len(out) >= 2 and out[-1] == "-" and out[-2].isalnum() and nxt[0].isalnum():
            left, right = _TAIL_WORD.search(out[:-1]), _HEAD_WORD.match(nxt)
            drop = bool(left and right and nxt[0].islower() and _drop_hyphen(left.group(), right.group()))
            out = (out[:-1] if drop else out) + nxt
        elif _CJK.match(out[-1]) and _CJK.match(nxt[0]):
            out += nxt
        else:
            out += " " + nxt
    return unicodedata.normalize("NFC", _SPACES.sub(" ", out).strip(" "))


def _drop_hyphen(left: str, right: str) -> bool:
    """True when "imple-⏎mentation" is one word broken at the line end, not "cross-⏎border"."""
    joined = _zipf((left + right).lower())
    return joined >= _KNOWN_ZIPF and joined > _zipf(f"{left}-{right}".lower())


def _repair_line(line: str) -> str:
    """Undo letter-spacing and stray spaces inside one line; runs of 2+ spaces are real word gaps."""
    if not _LATIN.search(line):
        return _SPACES.sub(" ", line)
    gapped = "  " in line
    groups = [g for g in _SPACES.split(line) if g]
    return " ".join(_merge_split_words(_unspace(g, gapped)) for g in groups)


def _unspace(group: str, gapped: bool) -> str:
    """Join a letter-spaced run ("f ro m" → "from"); single spaces separate its letters."""
    units = group.split(" ")
    if len(units) < 3 or not all(_SPACED.fullmatch(u) for u in units):
        return group
    if 3 * sum(len(u) == 1 for u in units) < 2 * len(units):
        return group
    word = "".join(units)
    known = _zipf(word.lower()) >= _KNOWN_ZIPF
    if len(units) >= 5 and sum(c.isalpha() for c in word) >= 5:
        return word if gapped or known else group  # a long run of letters is letter-spacing…
    return word if gapped and known else group  # …a short one only among other spaced words


@dataclass(frozen=True, slots=True)
class _Token:
    """A space-separated token and what the word segmentation needs to know about it."""

    text: str
    lead: str  # opening punctuation, kept only on a merged word's first piece
    core: str  # the letters ("" when the token is not a Latin word)
    trail: str  # closing punctuation, allowed only on a merged word's last piece
    cost: float
    first: bool  # may begin a merged word
    inner: bool  # may continue a merged word


@lru_cache(maxsize=1 << 16)
def _token(text: str) -> _Token:
    """Classify a token; ALL-CAPS, digits and non-Latin scripts are never merged."""
    m = _PIECE.fullmatch(text)
    if not m or (len(m.group(2)) > 1 and m.group(2).isupper()):
        return _Token(text, "", "", "", 0.0, False, False)
    lead, core, trail = m.groups()
    zipf = _zipf(core.lower())
    cost = 9.0 - zipf if zipf > 0 else _UNKNOWN_COST
    capitalised = core[0].isupper() and (len(core) == 1 or core[1:].islower())
    if capitalised:
        cost = min(cost, _NAME_COST)  # names are missing from wordfreq: unknown must not mean "merge me"
    first = not trail and (capitalised or core.islower())
    inner = not lead and core.islower()
    return _Token(text, lead, core, trail, cost, first, inner)


def _merge_split_words(group: str) -> str:
    """Rejoin words broken by stray spaces with a cheapest segmentation ("Depar tments" → "Departments").

    A kept token costs 9 - zipf; a merge of k pieces costs 9 - zipf(merged) + 3 per removed space and is
    allowed only when the merged word has zipf >= 2.5. "may be", "a visit", "IOM China" stay apart.
    """
    toks = [_token(t) for t in group.split(" ")]
    n = len(toks)
    if n < 2:
        return group
    best = [0.0] * (n + 1)
    take = [1] * (n + 1)
    for j in range(1, n + 1):
        best[j] = best[j - 1] + toks[j - 1].cost
        if not toks[j - 1].inner:
            continue
        run = toks[j - 1].cost
        for k in range(2, min(_MAX_PIECES, j) + 1):
            head = toks[j - k]
            run += head.cost
            penalty = _MERGE_PENALTY * (k - 1)
            # no word is cheaper than 1 (zipf < 8): skip the lookup when keeping the pieces can't lose
            if head.first and run > 1.0 + penalty:
                zipf = _zipf("".join(t.core for t in toks[j - k : j]).lower())
                cost = best[j - k] + 9.0 - zipf + penalty
                if zipf >= _MIN_MERGED_ZIPF and cost < best[j]:
                    best[j], take[j] = cost, k
            if not (head.inner and not head.trail):
                break  # it can't sit inside a longer merged word
    out: list[str] = []
    j = n
    while j > 0:
        k = take[j]
        if k == 1:
            out.append(toks[j - 1].text)
        else:
            pieces = toks[j - k : j]
            out.append(pieces[0].lead + "".join(t.core for t in pieces) + pieces[-1].trail)
        j -= k
    return " ".join(reversed(out))


@lru_cache(maxsize=1 << 16)
def _zipf(word: str) -> float:
    """English Zipf frequency of a lowercased word, 0.0 when unknown."""
    from wordfreq import zipf_frequency  # lazy: loading the word list takes half a second

    return zipf_frequency(word, "en")


# --------------------------------------------------------------------------- markdown


def _markdown(text: str) -> tuple[list[str], dict[int, tuple[str, str]]]:
    """Paragraphs of Markdown-like text and section starts: `#`/`##` banners, `###` article headings."""
    paras: list[str] = []
    bounds: dict[int, tuple[str, str]] = {}
    lines: list[str] = []
    banners: list[str] = []
    name = ""

    def flush() -> None:
        nonlocal banners, name
        if not lines:
            return
        if banners:
            name, banners = _BANNER_JOIN.join(banners), []
            bounds[len(paras)] = (name, "")
        paras.append(_join_lines(lines))
        lines.clear()

    for raw_line in text.split("\n"):
        content = raw_line.strip(" ")
        heading = _MD_HEADING.fullmatch(raw_line)
        if not content or heading or _MD_RULE.fullmatch(raw_line):
            flush()
            title = _SPACES.sub(" ", (heading.group(2) or "").strip(" ")) if heading else ""
            title = unicodedata.normalize("NFC", title)
            if heading and title and len(heading.group(1)) <= 2:
                banners.append(title)
            elif heading and title:
                lines.append(title)
                flush()  # a heading is its own paragraph and starts a section of its own
                bounds[len(paras) - 1] = (name, paras[-1])
            continue
        if _MD_ITEM.match(raw_line):
            flush()
        lines.append(content)
    flush()
    return paras, bounds


# --------------------------------------------------------------------------- assembly


def _assemble(paras: list[str], bounds: dict[int, tuple[str, str]]) -> tuple[str, tuple[Section, ...]]:
    """Join paragraphs with one blank line and turn section starts into sections that tile the text."""
    text = "\n\n".join(paras)
    starts: list[int] = []
    pos = 0
    for p in paras:
        starts.append(pos)
        pos += len(p) + 2
    marks = sorted(i for i in bounds if i < len(paras))
    if not text:
        return text, ()
    if not marks or marks[0] > 0:
        marks.insert(0, -1)  # text before the first banner: section ""
    sections = []
    for k, i in enumerate(marks):
        start = starts[i] if i >= 0 else 0
        end = starts[marks[k + 1]] if k + 1 < len(marks) else len(text)
        name, heading = bounds.get(i, ("", ""))
        sections.append(Section(start, end, name, heading))
    return text, tuple(sections)
