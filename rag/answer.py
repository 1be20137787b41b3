"""Extractive answers: the retrieved sentences that best answer the question, each with its [n] marker."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.chunk import units
from rag.lang import base, to_traditional
from rag.scope import off_topic, unknown_names
from rag.store import Index
from rag.types import Answer, Citation, Hit
from rag.verify import need, satisfies

NEVER_MENTIONED = {
    "en": "The newsletters don't say. They never mention {names}.",
    "zh": "新闻简报中没有提到这一点。简报中从未出现{names}。",
}
ABSTAIN = {
    "en": "The newsletters don't say. No passage in the indexed newsletters answers this question.",
    "zh": "新闻简报中没有提到这一点。已索引的新闻简报中没有能回答这个问题的段落。",
    "zh-hant": "新聞簡報中沒有提到這一點。已索引的新聞簡報中沒有能回答這個問題的段落。",
}


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How sentences are scored and chosen, and when the evidence is too weak to answer (tuned on dev)."""

    threshold: float = 0.8  # abstain when the best sentence scores below this
    max_sentences: int = 3
    margin: float = 0.05  # quote further sentences scoring within this of the best one
    type_margin: float = 0.2  # how far below the best a sentence of the asked-for kind may score
    weights: Mapping[str, float] = field(default_factory=lambda: {"use": 0.25, "e5": 1.0, "lexical": 1.0})
    rank_penalty: float = 0.01  # per rank of the passage the sentence comes from
    short_penalty: float = 0.1  # for fragments of under 6 units ("The MMSP Project Team")


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    row: int
    hit: int  # index into the hits list
    score: float
    place: int | None = None  # read with this hit's sentences instead of its own (a list's lead-in)


def score_sentences(
    index: Index,
    hits: Sequence[Hit],
    query: str,
    query_vectors: Mapping[str, np.ndarray],
    settings: AnswerSettings,
) -> list[ScoredSentence]:
    """Every sentence of the retrieved passages, best first: dense cosines + lexical overlap + passage rank."""
    row_of = {c.chunk_id: i for i, c in enumerate(index.chunks)}
    lexical: dict[int, float] = {}
    if index.sentence_lexical is not None and settings.weights.get("lexical", 0):
        lexical = dict(index.sentence_lexical.search(query, k=len(index.sentences)))
    seen: set[int] = set()
    out: list[ScoredSentence] = []
    for h, hit in enumerate(hits):
        doc = index.documents[hit.chunk.doc_id]
        rows = [
            r
            for r in index.chunk_sentences[row_of[hit.chunk.chunk_id]]
            if r not in seen and not _is_heading(doc.text[index.sentences[r][1] : index.sentences[r][2]], hit)
        ]
        if not rows:
            continue
        seen.update(rows)
        score = np.zeros(len(rows))
        for ch, q in query_vectors.items():
            score += settings.weights.get(ch, 1.0) * (index.sentence_vectors[ch][rows] @ q)
        score += settings.weights.get("lexical", 0.0) * np.array([lexical.get(r, 0.0) for r in rows])
        score -= settings.rank_penalty * h
        short = np.array([units(doc.text[index.sentences[r][1] : index.sentences[r][2]]) < 6 for r in rows])
        score -= settings.short_penalty * short
        out.extend(ScoredSentence(r, h, float(x)) for r, x in zip(rows, score, strict=True))
    out.sort(key=lambda s: -s.score)
    return out


def _is_heading(sentence: str, hit: Hit) -> bool:
    """Article headings help retrieval but are no answer: they state a topic, not a fact."""
    return bool(hit.chunk.heading) and sentence.strip() == hit.chunk.heading.strip()


def choose(
    index: Index, hits: Sequence[Hit], sentences: Sequence[ScoredSentence], question: str, settings: AnswerSettings
) -> list[ScoredSentence]:
    """The sentences to quote, best first; empty when the evidence is too weak (then we abstain)."""
    if not sentences or sentences[0].score < settings.threshold:
        return []
    asked = need(question)
    best = sentences[0].score

    def fits(s: ScoredSentence) -> bool:
        doc_id, start, end = index.sentences[s.row]
        return satisfies(asked, index.documents[doc_id].text[start:end], hits[s.hit].chunk.text)

    lead_ins: dict[int, ScoredSentence] = {}  # list item row → the lead-in sentence that carries its fact
    fitting = []
    for s in sentences:
        if s.score < best - settings.type_margin:
            break
        if fits(s):
            fitting.append(s)
        elif (lead := lead_in(index, s, sentences)) is not None and fits(lead):
            lead_ins[s.row] = lead
            fitting.append(s)
    if not fitting:
        return []
    top = fitting[0].score
    chosen = [s for s in fitting if s.score >= top - settings.margin][: settings.max_sentences]
    for s in list(chosen):  # quote the lead-in too: "Since 8 January 2023 … as follows:" + "• Resumed …"
        if (lead := lead_ins.get(s.row)) is not None and all(c.row != lead.row for c in chosen):
            chosen.append(dataclasses.replace(lead, place=s.hit))
    return chosen


_BULLET = re.compile(r"^\s*(?:[•·▪◦●\-–*]|\d{1,2}[.)、])\s*")


def lead_in(index: Index, item: ScoredSentence, sentences: Sequence[ScoredSentence]) -> ScoredSentence | None:
    """For a list item ("• Resumed the issuance of port visas …"), the retrieved sentence that introduces its
    list ("Since 8 January 2023, the NIA has … as follows."), when only other items of the list lie between."""
    spans = index.sentences  # row → (doc_id, start, end)
    doc_id, start, end = spans[item.row]
    text = index.documents[doc_id].text
    if not _BULLET.match(text[start:end]):
        return None
    before = [
        s
        for s in sentences
        if spans[s.row][0] == doc_id and spans[s.row][2] <= start and not _BULLET.match(text[slice(*spans[s.row][1:])])
    ]
    if not before:
        return None
    lead = max(before, key=lambda s: spans[s.row][1])
    lead_end = spans[lead.row][2]
    between = [line for line in text[lead_end:start].splitlines() if line.strip()]
    return lead if all(_BULLET.match(line) for line in between) else None


def never_mentioned(names: Sequence[str], language: str) -> str:
    """The abstention for a question about names no newsletter mentions, in the question's language."""
    if base(language) == "zh":
        text = NEVER_MENTIONED["zh"].format(names="、".join(f"“{n}”" for n in names))
        return to_traditional(text) if language == "zh-hant" else text
    quoted = [f'"{n}"' for n in names]
    joined = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return NEVER_MENTIONED["en"].format(names=joined)


def compose(
    question: str,
    query: str,
    language: str,
    index: Index,
    hits: Sequence[Hit],
    query_vectors: Mapping[str, np.ndarray],
    settings: AnswerSettings,
) -> Answer:
    """Pick the best sentences, cite each, or abstain plainly in the question's language.

    `query` is the question as matched (Traditional converted to Simplified).
    """
    if unknown := unknown_names(query, index.corpus) or off_topic(query, index.corpus):
        return Answer(question=question, language=language, abstained=True, answer=never_mentioned(unknown, language))
    sentences = score_sentences(index, hits, query, query_vectors, settings)
    chosen = choose(index, hits, sentences, query, settings)
    if not chosen:
        return Answer(question=question, language=language, abstained=True, answer=ABSTAIN.get(language, ABSTAIN["en"]))
    # Read in document order within a passage, passages in rank order.
    chosen.sort(key=lambda s: (s.hit if s.place is None else s.place, index.sentences[s.row][1]))
    citations: list[Citation] = []
    parts: list[str] = []
    for n, s in enumerate(chosen, start=1):
        doc_id, start, end = index.sentences[s.row]
        doc = index.documents[doc_id]
        hit = hits[s.hit]
        quote = doc.text[start:end]
        citations.append(
            Citation(
                n=n,
                doc_id=doc_id,
                title=doc.meta.title,
                issue=doc.meta.issue,
                section=hit.chunk.section + (f" — {hit.chunk.heading}" if hit.chunk.heading else ""),
                quote=quote,
                start=start,
                end=end,
                passage=hit.chunk.text,
                score=s.score,
                language=doc.language,
                passage_start=hit.chunk.start,
                also_in=hit.also_in,
            )
        )
        sep = "" if base(doc.language) == "zh" else " "
        parts.append(f"{quote}{sep}[{n}]")
    joiner = "" if base(language) == "zh" else " "
    text = joiner.join(parts).strip()
    if language == "zh-hant":  # the answer reads in the asker's script; quotes stay verbatim
        text = to_traditional(text)
    return Answer(
        question=question,
        language=language,
        abstained=False,
        answer=text,
        citations=tuple(citations),
    )
