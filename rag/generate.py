"""Generated answers: an LLM rewrites the answer stage's cited passages as a fluent answer in the question's
language, and every sentence it writes is checked against the passages it cites.

Only called when the answer stage decided to answer (its abstention stays in charge). The LLM gets the question
and the numbered cited passages (with the other edition's counterpart sentence where there is one) and is told
to answer in the question's language and script, with [n] markers, from the passages only. Afterwards each
sentence must cite a passage that exists and supports it: `support` is the pipeline's own cross-lingual
sentence similarity (the mean over its encoders of the cosine between the written sentence and the closest
sentence of the cited passage), and numbers the sentence states must appear in what it cites. Unsupported
sentences are dropped (the contract keeps them, `supported: false`); when none is left, or the server fails,
or it answers in another language, the extractive answer stands, with a `notice` saying why.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from rag.embed import Embedder
from rag.lang import base, detect, to_simplified, to_traditional
from rag.llm import ChatClient, ChatSettings, Generator, LLMError, Message
from rag.settings import Settings
from rag.store import Index
from rag.types import Answer, Citation, Sentence, Token, Turn

# Chosen on eval/datasets/mmsp-dev by eval/support_threshold.py (use + e5; Youden's J, ROC AUC 0.914):
# see docs/generation.md.
SUPPORT_THRESHOLD = 0.574

_LANGUAGE_NAMES = {"en": "English", "zh": "Simplified Chinese (简体中文)", "zh-hant": "Traditional Chinese (繁體中文)"}
_SYSTEM = {
    "en": (
        "You answer questions about newsletters using only the numbered passages given. Answer in {name}. "
        "End every sentence with the number of the passage it comes from in square brackets, like [1]. "
        "Use only facts stated in the passages; add nothing else. Write at most three short sentences."
    ),
    "zh": (
        "你根据给出的编号段落回答关于新闻简报的问题，只能使用这些段落。请用{name}回答。"
        "每句话末尾用方括号注明出处段落的编号，例如[1]。只使用段落中写明的事实，不要添加其他内容。最多写三句短句。"
    ),
}
# One worked exchange before the real one: small models follow a shown pattern better than an instruction.
_EXAMPLE = {
    "en": (
        "Passages:\n[1] The meeting took place in Rome on 3 May 2021.\n[2] Forty delegates attended.\n\n"
        "Question: Where and when was the meeting?",
        "The meeting took place in Rome [1]. It was held on 3 May 2021 [1].",
    ),
    "zh": (
        "段落：\n[1] 会议于2021年5月3日在罗马举行。\n[2] 共有四十名代表出席。\n\n问题：会议在何时何地举行？",
        "会议在罗马举行[1]。会议于2021年5月3日举行[1]。",
    ),
}
_CONDENSE = {
    "en": (
        "Rewrite the user's last question as one standalone question that can be understood without the "
        "conversation, in the same language as that question. Reply with the question only."
    ),
    "zh": "把用户的最后一个问题改写成一个不依赖上下文也能看懂的独立问题，使用与该问题相同的语言。只回复改写后的问题。",
}
_MARKERS = re.compile(r"\s*\[(\d{1,3}(?:\s*[,，]\s*\d{1,3})*)\]")
_END = re.compile(r"[.!?。！？]+[\"'”’）)]*((?:\s*\[\d{1,3}(?:\s*[,，]\s*\d{1,3})*\])*)")
_CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def chat_settings(settings: Settings) -> ChatSettings:
    return ChatSettings(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        connect_timeout=settings.llm_connect_timeout,
        timeout=settings.llm_timeout,
        retries=max(0, settings.llm_retries),
        max_tokens=settings.llm_max_tokens,
    )


def client(settings: Settings) -> ChatClient:
    return ChatClient(chat_settings(settings))


def _zh(language: str, text: str) -> str:
    return to_traditional(text) if language == "zh-hant" else text


def grounded_messages(answer: Answer) -> list[Message]:
    """The system instruction and the numbered passages with the question, in the question's language."""
    language = answer.language
    lang = base(language)
    system = _zh(language, _SYSTEM[lang].format(name=_LANGUAGE_NAMES.get(language, "English")))
    lines = []
    for c in answer.citations:
        lines.append(f"[{c.n}] {' '.join(c.passage.split())}")
        if c.aligned is not None:
            lines.append(f"[{c.n}] {c.aligned.quote}")
    head, ask = ("段落：", "问题：") if lang == "zh" else ("Passages:", "Question:")
    user = f"{_zh(language, head)}\n" + "\n".join(lines) + f"\n\n{_zh(language, ask)} {answer.question}"
    shown, reply = (_zh(language, x) for x in _EXAMPLE[lang])
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": shown},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": user},
    ]


def split_sentences(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """The sentences of a generated answer, each with the [n] markers it carries (markers after its full stop
    belong to it); a decimal point or an abbreviation's dot inside a word does not end a sentence."""
    pieces: list[str] = []
    for line in text.splitlines():
        start = 0
        for m in _END.finditer(line):
            nxt = line[m.end() : m.end() + 1]
            if m.group().startswith(".") and not m.group(1) and nxt and not nxt.isspace() and not _CJK.match(nxt):
                continue  # "9.5", "U.S."
            pieces.append(line[start : m.end()])
            start = m.end()
        pieces.append(line[start:])
    out = []
    for piece in pieces:
        piece = piece.strip()
        if not _MARKERS.sub("", piece).strip(" \t-•*"):
            continue
        cites = tuple(int(n) for group in _MARKERS.findall(piece) for n in re.split(r"\s*[,，]\s*", group))
        out.append((piece, tuple(dict.fromkeys(cites))))
    return out


def plain(text: str) -> str:
    """The text without its [n] markers."""
    return _MARKERS.sub("", text).strip()


def _cited_rows(index: Index, c: Citation) -> list[int]:
    """Sentence rows of a citation's passage, and of its counterpart in the other edition."""
    end = c.passage_start + len(c.passage)
    rows = [r for r in index.doc_sentence_rows.get(c.doc_id, []) if c.passage_start <= index.sentences[r][1] < end] or [
        r for r in index.doc_sentence_rows.get(c.doc_id, []) if index.sentences[r][1:] == (c.start, c.end)
    ]
    if c.aligned is not None:
        rows += [
            r
            for r in index.doc_sentence_rows.get(c.aligned.doc_id, [])
            if index.sentences[r][1:] == (c.aligned.start, c.aligned.end)
        ]
    return rows


def support(vectors: Mapping[str, np.ndarray], index: Index, c: Citation) -> float:
    """How well a written sentence (its vector per encoder) is backed by citation `c`: the highest, over the
    passage's sentences, of the mean cosine across encoders."""
    rows = _cited_rows(index, c)
    channels = [ch for ch in vectors if ch in index.sentence_vectors and len(index.sentence_vectors[ch])]
    if not rows or not channels:
        return 0.0
    sims = sum(index.sentence_vectors[ch][rows] @ vectors[ch] for ch in channels) / len(channels)
    return float(np.max(sims))


def _numbers(text: str) -> set[str]:
    """Numbers of two or more digits ("2023", "144", "1,000" as "1000"): single digits are often written as
    words or months in the other language's edition."""
    found = {n.replace(",", "").rstrip(".") for n in _NUMBER.findall(text)}
    return {n for n in found if len(n.replace(".", "")) >= 2}


def verify(
    text: str, answer: Answer, index: Index, embedders: Mapping[str, Embedder], threshold: float
) -> tuple[Sentence, ...]:
    """Each sentence of `text` with its cited passages and whether they support it."""
    by_n = {c.n: c for c in answer.citations}
    parts = split_sentences(text)
    bodies = [plain(s) for s, _ in parts]
    vectors = {name: e.encode_queries(bodies) for name, e in embedders.items()} if bodies else {}
    out = []
    for i, (sentence, cites) in enumerate(parts):
        cited = [by_n[n] for n in cites if n in by_n]
        mine = {name: v[i] for name, v in vectors.items()}
        score = max((support(mine, index, c) for c in cited), default=0.0)
        backing = " ".join(c.passage + " " + c.quote + " " + (c.aligned.quote if c.aligned else "") for c in cited)
        numbers_ok = _numbers(to_simplified(bodies[i])) <= _numbers(backing)
        ok = bool(cited) and len(cited) == len(cites) and numbers_ok and score >= threshold
        out.append(Sentence(sentence, cites, ok, score))
    return tuple(out)


def fallback(answer: Answer, code: str, sentences: tuple[Sentence, ...] = ()) -> Answer:
    """The extractive answer, with the reason the generated one was not given."""
    return dataclasses.replace(answer, mode="extractive", notice=code, sentences=sentences)


def in_language(text: str, language: str) -> str | None:
    """`text` in the question's script (Simplified ↔ Traditional converted), or None when it is in another
    language altogether."""
    written = detect(plain(text))
    if base(written) != base(language):
        return None
    if language == "zh-hant" and written != "zh-hant":
        return to_traditional(text)
    if language == "zh" and written == "zh-hant":
        return to_simplified(text)
    return text


def generate(
    answer: Answer,
    index: Index,
    embedders: Mapping[str, Embedder],
    generator: Generator,
    threshold: float = SUPPORT_THRESHOLD,
) -> Iterator[Token | Answer]:
    """Stream the LLM's text as Tokens, then the verified Answer (generated, or the extractive one with a notice)."""
    t0 = time.perf_counter()
    pieces: list[str] = []
    first = None
    try:
        for piece in generator.stream(grounded_messages(answer)):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            pieces.append(piece)
            yield Token(piece)
    except LLMError as exc:
        yield _timed(fallback(answer, exc.code), t0, first)
        return
    text = "".join(pieces).strip()
    if not plain(text):
        yield _timed(fallback(answer, "empty"), t0, first)
        return
    converted = in_language(text, answer.language)
    if converted is None:
        yield _timed(fallback(answer, "wrong_language"), t0, first)
        return
    sentences = verify(converted, answer, index, embedders, threshold)
    kept = [s.text for s in sentences if s.supported]
    if not kept:
        yield _timed(fallback(answer, "unsupported", sentences), t0, first)
        return
    joiner = "" if base(answer.language) == "zh" else " "
    out = dataclasses.replace(answer, answer=joiner.join(kept), mode="generated", sentences=sentences, notice="")
    yield _timed(out, t0, first)


def _timed(answer: Answer, t0: float, first: float | None) -> Answer:
    timings = dict(answer.timings_ms)
    timings["generate"] = (time.perf_counter() - t0) * 1000
    if first is not None:
        timings["first_token"] = first
    timings["total"] = timings.get("total", 0.0) + timings["generate"]
    return dataclasses.replace(answer, timings_ms=timings)


def condense(question: str, history: Sequence[Turn], generator: Generator, max_chars: int = 2000) -> str | None:
    """The last question rewritten by the LLM as a standalone question, or None when the LLM fails or its
    rewrite is unusable (empty, another language, too long)."""
    language = detect(question)
    lines = []
    for turn in history[-3:]:
        lines.append(f"User: {turn.question}")
        if turn.answer:
            lines.append(f"Assistant: {plain(turn.answer)[:600]}")
    lines.append(f"User: {question}")
    messages: list[Message] = [
        {"role": "system", "content": _zh(language, _CONDENSE[base(language)])},
        {"role": "user", "content": "\n".join(lines)},
    ]
    try:
        text = "".join(generator.stream(messages, max_tokens=80)).strip()
    except LLMError:
        return None
    text = text.splitlines()[0].strip().strip('"“”') if text else ""
    if not text or len(text) > max_chars or in_language(text, language) is None:
        return None
    return in_language(text, language)
