"""Extractive answers: the retrieved sentences the answer model picks, each with its [n] marker, a calibrated
confidence, and a plain abstention when the newsletters don't say."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from rag.align import counterpart
from rag.answer_model import QUESTION_FEATURES, AnswerModel, question_features, sigmoid
from rag.chunk import units
from rag.features import SENTENCE_FEATURES, candidates
from rag.lang import base, to_traditional
from rag.scope import off_topic, unknown_names
from rag.store import Index
from rag.types import Answer, Citation, Hit

NEVER_MENTIONED = {
    "en": "The newsletters don't say. They never mention {names}.",
    "zh": "新闻简报中没有提到这一点。简报中从未出现{names}。",
}
ABSTAIN = {
    "en": "The newsletters don't say. No passage in the indexed newsletters answers this question.",
    "zh": "新闻简报中没有提到这一点。已索引的新闻简报中没有能回答这个问题的段落。",
    "zh-hant": "新聞簡報中沒有提到這一點。已索引的新聞簡報中沒有能回答這個問題的段落。",
}
UNSUPPORTED = (
    "I can answer questions in English or Chinese only; please rephrase your question. "
    "/ 我只能回答中文或英文的问题，请换一种说法。"
)
CLOSEST = {
    "en": "These are the closest passages; they may not answer the question.",
    "zh": "以下是最相关的段落，未必能回答这个问题。",
    "zh-hant": "以下是最相關的段落，未必能回答這個問題。",
}


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """The answer model and how its output is used; thresholds below 0 take the model's own (chosen on dev)."""

    model: AnswerModel
    abstain: float = -1.0  # abstain below this confidence
    confident: float = -1.0  # between `abstain` and this, answer as "closest passages"
    max_sentences: int = 3
    margin: float = 1.0  # quote further sentences whose logit is within this of the best one

    @property
    def abstain_below(self) -> float:
        return self.abstain if self.abstain >= 0 else self.model.thresholds.abstain

    @property
    def confident_from(self) -> float:
        return max(self.abstain_below, self.confident if self.confident >= 0 else self.model.thresholds.confident)


@dataclass(frozen=True, slots=True)
class ScoredSentence:
    row: int
    hit: int  # index into the hits list
    score: float  # the sentence model's probability that this sentence answers
    place: int | None = None  # read with this hit's sentences instead of its own (a list's lead-in)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer stage's reading of one question: every candidate scored, and the confidence."""

    sentences: tuple[ScoredSentence, ...]  # best first
    logits: np.ndarray
    confidence: float
    inputs: np.ndarray  # the question model's features (QUESTION_FEATURES)


def decide(
    index: Index,
    hits: Sequence[Hit],
    query: str,
    language: str,
    query_vectors: Mapping[str, np.ndarray],
    model: AnswerModel,
) -> Decision:
    """Score every candidate sentence with the sentence model and the question with the question model."""
    if model.sentence.features != SENTENCE_FEATURES or model.question.features != QUESTION_FEATURES:
        raise ValueError(
            "the answer model was trained on other features than this code computes: "
            "retrain it with eval/train_answer.py"
        )
    found = candidates(index, hits, query, language, query_vectors)
    logits = model.sentence_logits(found.features)
    qf = question_features(
        logits, found.features, SENTENCE_FEATURES, found.top_hit, found.need.kind != "other", units(query)
    )
    confidence = model.confidence(qf) if found.items else 0.0
    order = np.argsort(-logits, kind="stable")
    scored = tuple(ScoredSentence(found.items[i].row, found.items[i].hit, float(sigmoid(logits[i]))) for i in order)
    return Decision(scored, logits[order], confidence, qf)


def choose(index: Index, decision: Decision, settings: AnswerSettings, language: str = "") -> list[ScoredSentence]:
    """The sentences to quote, best first: the best one, others whose logit is within the margin, and the
    lead-in of a list item (which carries the fact the item completes). A sentence of the other language's
    edition gives way to its counterpart in the question's `language` when that was retrieved too."""
    if not decision.sentences:
        return []
    best = float(decision.logits[0])
    chosen = [s for s, lg in zip(decision.sentences, decision.logits, strict=True) if lg >= best - settings.margin][
        : settings.max_sentences
    ]
    if language:
        chosen = list(dict.fromkeys(in_language(index, s, decision.sentences, base(language)) for s in chosen))
    for s in list(chosen):
        lead = lead_in(index, s, decision.sentences)
        if lead is not None and all(c.row != lead.row for c in chosen):
            chosen.append(dataclasses.replace(lead, place=s.hit))
    return chosen


def in_language(
    index: Index, item: ScoredSentence, sentences: Sequence[ScoredSentence], language: str
) -> ScoredSentence:
    """`item`, or the retrieved sentence that says the same in `language` (its aligned counterpart in that
    language's edition of the newsletter): the asker reads their own language, and the citation points at the
    edition written in it."""
    spans = index.sentences
    if base(index.documents[spans[item.row][0]].language) == language:
        return item
    aligned = counterpart(index, item.row, language)
    if aligned is None:
        return item
    return next((s for s in sentences if spans[s.row] == (aligned.doc_id, aligned.start, aligned.end)), item)


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
    decision = decide(index, hits, query, language, query_vectors, settings.model)
    chosen = choose(index, decision, settings, language)
    if not chosen or decision.confidence < settings.abstain_below:
        return Answer(
            question=question,
            language=language,
            abstained=True,
            answer=ABSTAIN.get(language, ABSTAIN["en"]),
            confidence=decision.confidence,
        )
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
                aligned=counterpart(index, s.row, language) if base(doc.language) != base(language) else None,
            )
        )
        sep = "" if base(doc.language) == "zh" else " "
        parts.append(f"{quote}{sep}[{n}]")
    joiner = "" if base(language) == "zh" else " "
    text = joiner.join(parts).strip()
    if language == "zh-hant":  # the answer reads in the asker's script; quotes stay verbatim
        text = to_traditional(text)
    confident = decision.confidence >= settings.confident_from
    return Answer(
        question=question,
        language=language,
        abstained=False,
        answer=text,
        citations=tuple(citations),
        confidence=decision.confidence,
        verdict="answer" if confident else "closest",
    )
