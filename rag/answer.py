"""Extractive answers: the retrieved sentences that best answer the question, each with its [n] marker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.lang import base
from rag.store import Index
from rag.types import Answer, Citation, Hit

ABSTAIN = {
    "en": "The newsletters don't say. No passage in the indexed newsletters answers this question.",
    "zh": "新闻简报中没有提到这一点。已索引的新闻简报中没有能回答这个问题的段落。",
    "zh-hant": "新聞簡報中沒有提到這一點。已索引的新聞簡報中沒有能回答這個問題的段落。",
}


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """How many sentences to quote and when the evidence is too weak to answer."""

    threshold: float = 0.5
    max_sentences: int = 3
    relative_cutoff: float = 0.9  # keep sentences scoring at least this share of the best one


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    row: int
    hit: int  # index into the hits list
    score: float


def score_sentences(index: Index, hits: Sequence[Hit], query_vectors: Mapping[str, np.ndarray]) -> list[ScoredSentence]:
    """Every sentence of the retrieved passages, scored by mean cosine to the question over channels."""
    row_of = {c.chunk_id: i for i, c in enumerate(index.chunks)}
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
        sims = np.mean([index.sentence_vectors[ch][rows] @ q for ch, q in query_vectors.items()], axis=0)
        out.extend(ScoredSentence(r, h, float(s)) for r, s in zip(rows, sims, strict=True))
    out.sort(key=lambda s: -s.score)
    return out


def _is_heading(sentence: str, hit: Hit) -> bool:
    """Article headings help retrieval but are no answer: they state a topic, not a fact."""
    return bool(hit.chunk.heading) and sentence.strip() == hit.chunk.heading.strip()


def confidence(hits: Sequence[Hit], sentences: Sequence[ScoredSentence]) -> float:
    """How sure we are the passages answer the question: the best sentence's cosine (0..1)."""
    if not hits or not sentences:
        return 0.0
    return sentences[0].score


def compose(
    question: str,
    language: str,
    index: Index,
    hits: Sequence[Hit],
    query_vectors: Mapping[str, np.ndarray],
    settings: AnswerSettings,
) -> Answer:
    """Pick the best sentences, cite each, or abstain plainly in the question's language."""
    sentences = score_sentences(index, hits, query_vectors)
    conf = confidence(hits, sentences)
    if conf < settings.threshold:
        return Answer(question=question, language=language, abstained=True, answer=ABSTAIN.get(language, ABSTAIN["en"]))
    best = sentences[0].score
    chosen = [s for s in sentences if s.score >= best * settings.relative_cutoff][: settings.max_sentences]
    # Read in document order within a passage, passages in rank order.
    chosen.sort(key=lambda s: (s.hit, index.sentences[s.row][1]))
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
    return Answer(
        question=question,
        language=language,
        abstained=False,
        answer=joiner.join(parts).strip(),
        citations=tuple(citations),
    )
