"""Split clean documents into overlapping passages with exact offsets and sentence boundaries."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.types import Chunk, Document

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+(?:['’.-][A-Za-z0-9]+)*")

BLOCK = 200_000  # characters the splitter is given at once (a section longer than this is cut at paragraphs)

# Paragraphs first, then sentence ends in both scripts, then clauses, then words.
SEPARATORS = ("\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", " ", "")

# Abbreviations after which a full stop does not end an English sentence.
_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "st", "no", "vs", "etc", "e.g", "i.e", "h.e", "inc", "jr", "sr"}
_SENT_END = re.compile(r"[。！？!?]+[”’\"')）]*|\.(?:[”’\"')）]+)?(?=\s|$)")


@dataclass(frozen=True, slots=True)
class ChunkSettings:
    """How passages are cut: `size` and `overlap` are in `units` (see `units`)."""

    size: int = 110
    overlap: int = 25

    def as_dict(self) -> dict[str, int | str]:
        return {"size": self.size, "overlap": self.overlap, "unit": "word-equivalents (Han char = 0.6)"}


def units(text: str) -> int:
    """Length measure fair to both languages: English words plus 0.6 per Han character.

    An English word carries about as much meaning as 1.6 Chinese characters (parallel XQuAD paragraphs
    have ~1.6 Han characters per English word), so equal `units` means equal content in either language.
    """
    han = len(_HAN.findall(text))
    words = len(_WORD.findall(text))
    return words + round(han * 0.6)


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (absolute offsets, stripped of surrounding whitespace) of text[start:end]."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for para_start, para_end in _paragraphs(text, start, end):
        cut = para_start
        for m in _SENT_END.finditer(text, para_start, para_end):
            if m.group().startswith(".") and _is_abbreviation(text, para_start, m.start()):
                continue
            if m.group().startswith(".") and _next_is_lower(text, m.end(), para_end):
                continue
            _append_stripped(text, cut, m.end(), spans)
            cut = m.end()
        _append_stripped(text, cut, para_end, spans)
    return spans


def chunk(
    doc: Document, settings: ChunkSettings = ChunkSettings(), progress: Callable[[int, int], None] | None = None
) -> list[Chunk]:
    """Cut a document into passages, never across a section, with exact offsets into `doc.text`.

    Linear in the document's length: sections over `BLOCK` characters are split in blocks at paragraph
    breaks (the splitter works one block at a time), and `progress(characters done, total)` follows them.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        separators=list(SEPARATORS),
        keep_separator="end",
        chunk_size=settings.size,
        chunk_overlap=settings.overlap,
        length_function=units,
        strip_whitespace=True,
    )
    sentences = split_sentences(doc.text)
    ends = [e for _s, e in sentences]
    chunks: list[Chunk] = []
    spans = [(a, b, sec, head) for s0, s1, sec, head in _spans(doc) for a, b in _blocks(doc.text, s0, s1)]
    for span_start, span_end, section, heading in spans:
        cursor = span_start
        if progress is not None:
            progress(span_start, len(doc.text))
        for piece in splitter.split_text(doc.text[span_start:span_end]):
            # langchain's own start_index uses str.find and can return -1; locate pieces ourselves.
            start = doc.text.find(piece, cursor, span_end)
            if start < 0:
                raise AssertionError(f"chunk not found in {doc.doc_id} after offset {cursor}")
            end = start + len(piece)
            assert doc.text[start:end] == piece
            cursor = start + 1
            chunks.append(
                Chunk(
                    chunk_id=f"{doc.doc_id}#{len(chunks)}",
                    doc_id=doc.doc_id,
                    ordinal=len(chunks),
                    start=start,
                    end=end,
                    text=piece,
                    sentences=_clip(sentences, ends, start, end),
                    section=section,
                    heading=heading,
                    language=doc.language,
                )
            )
    if progress is not None:
        progress(len(doc.text), len(doc.text))
    return chunks


def _blocks(text: str, start: int, end: int, size: int | None = None) -> list[tuple[int, int]]:
    """[start, end) cut at paragraph breaks into blocks of about `size` characters (one block when shorter)."""
    size = size or BLOCK
    out = []
    while end - start > size:
        cut = text.rfind("\n\n", start + size // 2, start + size)
        if cut < 0:
            cut = text.find("\n\n", start + size, end)
            if cut < 0:
                break
        out.append((start, cut))
        start = cut + 2
    out.append((start, end))
    return [(a, b) for a, b in out if text[a:b].strip()]


def _spans(doc: Document) -> list[tuple[int, int, str, str]]:
    """The document cut at section boundaries, each span with its section name and heading."""
    if not doc.sections:
        return [(0, len(doc.text), "", "")]
    spans = []
    cursor = 0
    for s in sorted(doc.sections, key=lambda s: s.start):
        if s.start > cursor and doc.text[cursor : s.start].strip():
            spans.append((cursor, s.start, "", ""))
        spans.append((s.start, s.end, s.name, s.heading))
        cursor = max(cursor, s.end)
    if cursor < len(doc.text) and doc.text[cursor:].strip():
        spans.append((cursor, len(doc.text), "", ""))
    return [sp for sp in spans if doc.text[sp[0] : sp[1]].strip()]


def _clip(sentences: list[tuple[int, int]], ends: list[int], start: int, end: int) -> tuple[tuple[int, int], ...]:
    """Sentences overlapping [start, end), clipped to it (a chunk may begin or end mid-sentence).

    `sentences` are in text order and don't overlap, so `ends` (their ends) is sorted: a binary search finds
    the first one, which keeps chunking linear in the document's length.
    """
    out = []
    for i in range(bisect.bisect_right(ends, start), len(sentences)):
        s, e = sentences[i]
        if s >= end:
            break
        out.append((max(s, start), min(e, end)))
    return tuple(out)


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans = []
    cut = start
    for m in re.finditer(r"\n\s*\n|\n", text[start:end]):
        spans.append((cut, start + m.start()))
        cut = start + m.end()
    spans.append((cut, end))
    return spans


def _append_stripped(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def _is_abbreviation(text: str, para_start: int, dot: int) -> bool:
    """True for the full stop of "Mr.", "H.E.", "e.g." or a single initial like "J."."""
    i = dot
    while i > para_start and (text[i - 1].isalpha() or text[i - 1] == "."):
        i -= 1
    word = text[i:dot].lower()
    return word in _ABBREV or (len(word) == 1 and word.isalpha())


def _next_is_lower(text: str, pos: int, end: int) -> bool:
    """A full stop followed by a lowercase word (e.g. "approx. two") does not end a sentence."""
    while pos < end and text[pos] == " ":
        pos += 1
    return pos < end and text[pos].islower()
