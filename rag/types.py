"""Typed values that flow between pipeline stages (ingest → clean → chunk → embed → index → retrieve → answer)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Meta:
    """Newsletter metadata: from front matter or a `<stem>.meta.json` sidecar."""

    title: str
    issue: str = ""
    period: str = ""  # human-readable, e.g. "May 2022 – June 2023"
    date_start: str = ""  # ISO date (YYYY-MM-DD) the issue covers from; "" if unknown
    date_end: str = ""  # ISO date the issue covers to
    language: str = ""  # "en", "zh" (Simplified), "zh-hant"; "" = detect
    edition_of: str = ""  # shared key of editions of one issue in several languages


@dataclass(frozen=True, slots=True)
class RawDocument:
    """A file read from disk: decoded text before cleaning."""

    doc_id: str
    path: str
    text: str
    meta: Meta
    fmt: str  # "txt", "md", "html", "pdf", "docx"
    encoding: str = "utf-8"
    links: tuple[tuple[str, str], ...] = ()  # (link text, target) of Markdown / HTML links, in reading order


@dataclass(frozen=True, slots=True)
class Section:
    """A span of a document's clean text that falls under one banner / heading."""

    start: int
    end: int
    name: str  # banner, e.g. "MMSP II EVENTS"
    heading: str = ""  # article heading inside the banner, if any


@dataclass(frozen=True, slots=True)
class Document:
    """A cleaned newsletter: the text every offset refers to."""

    doc_id: str
    text: str
    meta: Meta
    language: str  # "en" or "zh" (dominant language of the text)
    sections: tuple[Section, ...] = ()
    content_hash: str = ""
    path: str = ""
    links: tuple[tuple[str, str], ...] = ()  # (link text, target): the targets are not in `text`

    @property
    def edition_key(self) -> str:
        """The metadata editions of one issue in several languages share: `meta.edition_of`, else title and
        issue (`Index.edition_keys` also pairs file names that differ only by a language tag)."""
        return self.meta.edition_of or f"{self.meta.title}|{self.meta.issue}"

    def section_at(self, offset: int) -> Section | None:
        """The section containing `offset`, or None."""
        for s in self.sections:
            if s.start <= offset < s.end:
                return s
        return None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document; `doc.text[start:end] == text` always holds."""

    chunk_id: str  # f"{doc_id}#{ordinal}"
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    sentences: tuple[tuple[int, int], ...]  # absolute (start, end) offsets of each sentence in doc.text
    section: str = ""
    heading: str = ""
    language: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved chunk with its fused score and per-channel scores."""

    chunk: Chunk
    score: float
    channels: dict[str, float] = field(default_factory=dict)
    also_in: tuple[str, ...] = ()  # doc_ids of other editions carrying the same passage


@dataclass(frozen=True, slots=True)
class Citation:
    """One cited sentence: where it comes from, exactly."""

    n: int
    doc_id: str
    title: str
    issue: str
    section: str
    quote: str
    start: int
    end: int
    passage: str
    score: float
    language: str = ""
    passage_start: int = 0
    also_in: tuple[str, ...] = ()
    aligned: Aligned | None = None  # the same sentence in the question's language, from another edition


@dataclass(frozen=True, slots=True)
class Aligned:
    """A cited sentence's counterpart in another edition of the same issue (in the question's language)."""

    doc_id: str
    quote: str
    start: int
    end: int
    language: str
    similarity: float

    def to_dict(self) -> dict:
        return {
            "doc_id": self.doc_id,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
            "language": self.language,
            "similarity": round(self.similarity, 4),
        }


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence of a generated answer: the passages it cites and whether they were found to support it."""

    text: str
    cites: tuple[int, ...]  # citation numbers ([n] markers) the sentence carries
    supported: bool
    support: float  # the cross-lingual support score of its best cited passage (rag.generate.support)

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "cites": list(self.cites),
            "supported": self.supported,
            "support": round(self.support, 4),
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """What the assistant says: answer text with [n] markers and its citations, extracted or generated."""

    question: str
    language: str  # language of the question: "en", "zh", "zh-hant"
    abstained: bool
    answer: str
    citations: tuple[Citation, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0  # calibrated probability that the cited passages answer the question
    verdict: str = "abstain"  # "answer", "closest" (shown, but possibly not answering) or "abstain"
    mode: str = "extractive"  # "extractive" (quoted sentences) or "generated" (written by the configured LLM)
    sentences: tuple[Sentence, ...] = ()  # generated mode: every sentence the LLM wrote, kept or not
    notice: str = ""  # why a generated answer fell back to the extractive one (rag.generate.NOTICES), or ""
    resolved_question: str = ""  # the standalone question a follow-up was read as ("" = the question itself)

    def to_dict(self) -> dict:
        """The stable JSON contract shared by CLI, UI and HTTP API."""
        return {
            "question": self.question,
            "language": self.language,
            "abstained": self.abstained,
            "verdict": self.verdict,
            "confidence": round(self.confidence, 4),
            "answer": self.answer,
            "citations": [
                {
                    "n": c.n,
                    "doc_id": c.doc_id,
                    "title": c.title,
                    "issue": c.issue,
                    "section": c.section,
                    "quote": c.quote,
                    "start": c.start,
                    "end": c.end,
                    "passage": c.passage,
                    "score": round(c.score, 4),
                    "language": c.language,
                    "also_in": list(c.also_in),
                    "aligned": None if c.aligned is None else c.aligned.to_dict(),
                }
                for c in self.citations
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "mode": self.mode,
            "sentences": [x.to_dict() for x in self.sentences],
            "notice": self.notice,
            "resolved_question": self.resolved_question or self.question,
        }


@dataclass(frozen=True, slots=True)
class Draft:
    """Streamed first when an LLM will write the answer: the extractive answer, shown until it is replaced."""

    answer: Answer


@dataclass(frozen=True, slots=True)
class Token:
    """A piece of generated answer text, as the LLM streamed it (before verification)."""

    text: str


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange of a conversation: what was asked and what was answered."""

    question: str
    answer: str = ""
