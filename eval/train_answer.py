"""Train the answer model on public QA data, never on the newsletters; write `rag/models/answer.json`.

    python eval/train_answer.py --data ../shared/data [--out rag/models/answer.json]
        [--dev eval/datasets/mmsp-dev eval/datasets/transit-dev eval/datasets/coop-dev eval/datasets/river-dev]

Data (read from `--data`, never copied): XQuAD **dev split** (first 24 articles, English and Chinese editions of
the same paragraphs), CMRC 2018 dev + trial (Simplified), DRCD dev (Traditional), each subsampled by article
with a fixed seed. Every paragraph becomes a document of a training index built by the real pipeline (same
chunker, encoders and BM25), and every question is asked by the real retrieval:

- as is: answerable; the positive is the sentence holding the answer span, the negatives the other candidate
  sentences of the retrieved passages;
- with its paragraph removed (the rest of its article stays, so the passages retrieved are near misses):
  unanswerable, unless a retrieved sentence still contains the answer text (then it is dropped as ambiguous);
- against a second index whose documents lack the sentences holding its answer (`struck_corpus`), so passages,
  BM25 and cosines read text without the fact: unanswerable; with `--masked excluded` (the sixth model) those
  sentences are only left out of the candidates and their passages still read whole;
- XQuAD only: with the question's own edition removed, so the answer is in the other language;
- swapped: one of the question's content words that its paragraph uses replaced by another article's word
  that the paragraph never uses ("Which hotel …" for "Which city …"): unanswerable, the attribute near miss.

The sentence model is a logistic regression over `rag.features.SENTENCE_FEATURES`; the question model one over
`rag.answer_model.QUESTION_FEATURES`, fed with sentence-model logits cross-fitted on two article folds so it
learns from honest scores. Held-out figures of each are computed on a third of the articles never fitted on.
With `--dev` (dev sets, never a held-out one; several are read as one set of questions, so the correction
and thresholds are fitted on more than one newsletter), two things are fitted on them:

- a *correction* of the question model: a logistic regression over the same question features with the public
  model's logit as its offset, shrunk towards no change; the shrinkage is chosen by 5-fold cross-validation
  on dev (AUC). Public data decides the shape, dev the share and kinds of unanswerable questions an archive has;
- the abstain and "closest passages" thresholds, on the dev questions' *out-of-fold* confidences (each from a
  correction fitted without it): abstain where abstention F1 is best among thresholds that refuse at most 10%
  of the answerable dev questions; "confident" from a corrected confidence of 0.9 (nine in ten questions so
  scored are answered by their passages: the confidence is calibrated on dev by the correction).

Deterministic
(fixed seeds, Newton's method); about 6 minutes on 2 cores the first time, 3-7 minutes afterwards (indexes
are cached under eval/out/answer-train/; the questions are asked again).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag import lang
from rag.answer_model import (
    QUESTION_FEATURES,
    QUESTION_SIGNS,
    AnswerModel,
    Logistic,
    Thresholds,
    question_features,
    sigmoid,
)
from rag.answer_model import load as load_answer_model
from rag.chunk import split_sentences, units
from rag.features import SENTENCE_FEATURES, candidates
from rag.focus import focus, named_in
from rag.pipeline import Pipeline
from rag.qa_eval import _stage_bars
from rag.retrieve import Filters, row_map, search
from rag.settings import PROJECT_ROOT, load_settings
from rag.types import Document, Meta

SEED = 11
K = 5  # passages per question, as the pipeline's default `k`
L2 = 1.0


@dataclass(frozen=True, slots=True)
class Item:
    """One training question: where its answer is, per edition."""

    qid: str
    source: str
    group: str  # article: the unit of folds and of held-out splits
    question: str
    language: str
    gold: dict[str, tuple[int, str]]  # doc_id → (answer start, answer text) in that edition
    own_doc: str  # the edition in the question's language


@dataclass(frozen=True, slots=True)
class Corpus:
    name: str
    documents: tuple[Document, ...]
    items: tuple[Item, ...]


# ---------------------------------------------------------------- data


def _doc(doc_id: str, text: str, language: str, title: str, edition: str = "") -> Document:
    meta = Meta(title=title, issue=doc_id, language=language, edition_of=edition)
    digest = hashlib.sha256(json.dumps([doc_id, text, language, edition], ensure_ascii=False).encode()).hexdigest()
    return Document(doc_id=doc_id, text=text, meta=meta, language=lang.base(language), content_hash=digest)


def xquad_corpus(folder: Path, rng: random.Random, per_language: int) -> Corpus:
    """XQuAD dev split: both editions of each paragraph, paired by `edition_of`; questions in both languages."""
    from rag.xquad import load

    split = load(folder, "dev")
    answers = {
        (language, qa["id"]): qa["answers"][0]["text"]
        for language in ("en", "zh")
        for a in json.loads((folder / f"xquad.{language}.json").read_text("utf-8"))["data"]
        for p in a["paragraphs"]
        for qa in p["qas"]
    }
    docs = tuple(
        _doc(f"xq-{p.language}-{p.pid}", p.text, p.language, f"xquad {p.pid.split('/')[0]}", p.pid)
        for p in split.paragraphs
    )
    by_id: dict[str, dict[str, object]] = {}
    for q in split.questions:
        by_id.setdefault(q.qid.split("/", 1)[1], {})[q.language] = q
    items = []
    for lang_ in ("en", "zh"):
        chosen = sorted(k for k, v in by_id.items() if lang_ in v and len(v) == 2)
        rng.shuffle(chosen)
        for key in sorted(chosen[:per_language]):
            versions = by_id[key]
            q = versions[lang_]
            gold = {}
            for v in versions.values():
                doc_id = f"xq-{v.language}-{v.pid}"  # type: ignore[attr-defined]
                start = v.answer_start  # type: ignore[attr-defined]
                gold[doc_id] = (start, answers[(v.language, key)])  # type: ignore[attr-defined]
            items.append(
                Item(
                    f"xq-{lang_}-{key}",
                    "xquad",
                    q.pid.split("/")[0],  # type: ignore[attr-defined]
                    q.text,  # type: ignore[attr-defined]
                    lang_,
                    gold,
                    f"xq-{lang_}-{q.pid}",  # type: ignore[attr-defined]
                )
            )
    return Corpus("xquad-dev", docs, tuple(items))


def squad_corpus(name: str, files: Sequence[Path], rng: random.Random, paragraphs: int, questions: int) -> Corpus:
    """A SQuAD-format Chinese set (CMRC 2018, DRCD): a sample of articles, every paragraph a document."""
    articles = [a for f in files for a in json.loads(f.read_text("utf-8"))["data"]]
    rng.shuffle(articles)
    docs: list[Document] = []
    items: list[Item] = []
    for a, article in enumerate(articles):
        if len(docs) >= paragraphs:
            break
        group = f"{name}-a{a}"
        for p, par in enumerate(article["paragraphs"]):
            text = par["context"]
            language = lang.detect(text)
            doc_id = f"{name}-{a}-{p}"
            docs.append(_doc(doc_id, text, language, f"{name} {article.get('title', a)}"))
            for qa in par["qas"]:
                answer = next(
                    (
                        x
                        for x in qa["answers"]
                        if text[x["answer_start"] : x["answer_start"] + len(x["text"])] == x["text"]
                    ),
                    None,
                )
                if answer is None or not answer["text"].strip():
                    continue
                question = qa["question"]
                items.append(
                    Item(
                        f"{name}-{qa['id']}",
                        name,
                        group,
                        question,
                        lang.detect(question),
                        {doc_id: (answer["answer_start"], answer["text"])},
                        doc_id,
                    )
                )
    rng.shuffle(items)
    return Corpus(name, tuple(docs), tuple(sorted(items[:questions], key=lambda i: i.qid)))


# ---------------------------------------------------------------- examples


@dataclass
class Scenario:
    item: Item
    kind: str  # "full", "removed", "cross", "masked", "struck", "swapped"
    answerable: bool
    features: np.ndarray  # candidate sentences × SENTENCE_FEATURES
    labels: np.ndarray  # 1 for a sentence holding the answer
    top_hit: dict[str, float]
    asks_type: bool


def struck_corpus(corpus: Corpus) -> Corpus:
    """The corpus with every sentence that holds one of its answers cut out of its documents (each edition's
    own answer sentence; a sentence that only repeats an answer's text goes too). Asked against it, a question
    meets an archive on exactly its topic that never states the fact asked for: retrieval, passage cosines,
    BM25 and coverage all read text without it, as they do for a real near miss."""
    cut: dict[str, list[tuple[int, str]]] = {}
    for item in corpus.items:
        for doc_id, (start, answer) in item.gold.items():
            cut.setdefault(doc_id, []).append((start, answer))
    documents = []
    for doc in corpus.documents:
        answers = cut.get(doc.doc_id, [])
        kept = [
            doc.text[a:b]
            for a, b in split_sentences(doc.text)
            if not any(holds_answer(doc.text, a, b, start, t) for start, t in answers)
        ]
        text = " ".join(kept) if doc.language != "zh" else "".join(kept)
        if text.strip():
            documents.append(_doc(doc.doc_id, text, doc.meta.language, doc.meta.title, doc.meta.edition_of))
    return Corpus(f"{corpus.name}-struck", tuple(documents), corpus.items)


def scenarios(
    pipe: Pipeline, corpus: Corpus, bar: bool, struck: Pipeline | None = None, masked: bool = True
) -> list[Scenario]:
    """Ask every question of the corpus against its index: as is, with its paragraph removed, from the other
    edition, with one of its words swapped for a word the paragraph never uses, with the answer sentences
    masked out of the candidates (`masked`; their passages still read whole), and against the `struck` index
    (`struck_corpus`: its answer sentences cut out of the text)."""
    from tqdm import tqdm

    index = pipe.index()
    struck_index = struck.index() if struck is not None else None
    queries = [lang.to_simplified(i.question) if i.language == "zh-hant" else i.question for i in corpus.items]
    texts = {d.doc_id: d.text for d in corpus.documents}
    swaps = swapped_questions(corpus, queries, texts)
    asked = queries + [q for q in swaps if q]
    vectors = {name: _encode(e, asked) for name, e in pipe.embedders.items()}
    swapped_at = {}
    for n, q in enumerate(swaps):
        if q:
            swapped_at[n] = len(queries) + len(swapped_at)
    out: list[Scenario] = []
    for n, item in enumerate(tqdm(corpus.items, desc=f"ask {corpus.name}", unit="q", file=sys.stderr, disable=not bar)):
        plans = [
            ("full", (), True, n),
            ("removed", tuple(item.gold), False, n),
        ]
        if masked:
            plans.append(("masked", (), False, n))
        if struck_index is not None:
            plans.append(("struck", (), False, n))
        if len(item.gold) > 1:
            plans.append(("cross", (item.own_doc,), True, n))
        if n in swapped_at:
            plans.append(("swapped", (), False, swapped_at[n]))
        for kind, removed, answerable, at in plans:
            query = asked[at]
            qv = {name: v[at] for name, v in vectors.items()}
            asked_of = struck_index if kind == "struck" and struck_index is not None else index
            hits = search(asked_of, query, qv, pipe.fusion(), Filters(exclude=removed), K, item.language)
            left_out = _answer_rows(index, hits, item) if kind == "masked" else frozenset()
            found = candidates(asked_of, hits, query, item.language, qv, left_out)
            if not found.items:
                continue
            labels = np.zeros(len(found.items))
            ambiguous = False
            for j, c in enumerate(found.items):
                doc_id, a, b = asked_of.sentences[c.row]
                if doc_id in item.gold and kind != "swapped" and asked_of is index:
                    start, _text = item.gold[doc_id]
                    labels[j] = float(a <= start < b)
                elif not answerable and kind != "swapped":
                    answer = item.gold[item.own_doc][1]
                    ambiguous = ambiguous or holds_answer(asked_of.documents[doc_id].text, a, b, -1, answer)
            if ambiguous:
                continue
            out.append(
                Scenario(
                    item,
                    kind,
                    answerable and labels.any(),
                    found.features,
                    labels,
                    found.top_hit,
                    found.need.kind != "other",
                )
            )
    return out


def swapped_questions(corpus: Corpus, queries: Sequence[str], texts: dict[str, str]) -> list[str]:
    """Each question with one word replaced so that it asks the paragraph's topic for something the paragraph
    does not say ("" when no replacement exists), the near miss newsletter readers ask ("Which hotel …", "How
    much did … cost?"), as SQuAD 2.0 built its negatives:

    - a question with a focus (`rag.focus`: "Which *city* …", "哪家*酒店*") gets another article's question's
      focus that no word of the paragraph names ("Which *university* …" of a paragraph naming only a city);
    - any other question, one of its content words the paragraph uses swapped for a content word of another
      article's question that the paragraph never uses.

    Deterministic: choices are seeded by the question id.
    """
    words = [_content_words(q, item.language) for q, item in zip(queries, corpus.items, strict=True)]
    foci = [focus(q).word for q in queries]
    pool: dict[str, list[tuple[str, str]]] = {}
    focus_pool: dict[str, list[tuple[str, str]]] = {}
    for ws, f, item in zip(words, foci, corpus.items, strict=True):
        pool.setdefault(lang.base(item.language), []).extend((w, item.group) for w in ws)
        if f:
            focus_pool.setdefault(lang.base(item.language), []).append((f, item.group))
    out = []
    for q, ws, f, item in zip(queries, words, foci, corpus.items, strict=True):
        text = texts[item.own_doc]
        if f:
            swapped = _swap_focus(q, f, text, focus_pool.get(lang.base(item.language), []), item)
            if swapped:
                out.append(swapped)
                continue
        rng = random.Random(f"{SEED}-{item.qid}")
        inside = [w for w in ws if w.lower() in text.lower()]
        others = [
            w for w, g in pool.get(lang.base(item.language), []) if g != item.group and w.lower() not in text.lower()
        ]
        if not inside or not others:
            out.append("")
            continue
        old, new = rng.choice(inside), rng.choice(others)
        out.append(q.replace(old, new, 1))
    return out


def _swap_focus(
    question: str, word: str, text: str, pool: Sequence[tuple[str, str]], item: Item, tries: int = 12
) -> str:
    """`question` asking for another article's focus instead of `word`, one the paragraph `text` never names
    and the question still reads as its focus; "" when none of `tries` seeded picks does."""
    rng = random.Random(f"{SEED}-focus-{item.qid}")
    options = sorted({w for w, g in pool if g != item.group and w.lower() != word.lower()})
    rng.shuffle(options)
    for w in options[:tries]:
        swapped = question.replace(word, w, 1)
        f = focus(swapped)
        if f.word == w and not named_in(f, text):
            return swapped
    return ""


def _content_words(question: str, language: str) -> list[str]:
    """Words worth swapping: English lowercase words of four or more letters (names left alone), Chinese
    words of two or more characters that are not names; stopwords and question words left out."""
    from rag.lexical import EN_STOPWORDS, ZH_STOPWORDS
    from rag.scope import tagged

    if lang.base(language) == "en":
        return [w for w in re.findall(r"(?<![A-Za-z])[a-z]{4,}(?![A-Za-z])", question) if w not in EN_STOPWORDS]
    out = []
    for run in re.findall(r"[\u4e00-\u9fff]+", question):
        out += [
            w
            for w, flag in tagged(run)
            if len(w) >= 2 and w not in ZH_STOPWORDS and not flag.startswith(("nr", "ns", "nt", "nz", "r", "m"))
        ]
    return list(dict.fromkeys(out))


def _answer_rows(index, hits, item: Item) -> frozenset[int]:  # type: ignore[no-untyped-def]
    """The sentences of the retrieved passages that hold the answer (its span, or its text anywhere): masking
    them leaves passages on the question's very topic that lack the fact asked for, the hardest near miss."""
    out = set()
    answer = item.gold[item.own_doc][1]
    for hit in hits:
        for r in index.chunk_sentences[row_map(index)[hit.chunk.chunk_id]]:
            doc_id, a, b = index.sentences[r]
            if holds_answer(index.documents[doc_id].text, a, b, item.gold.get(doc_id, (-1, ""))[0], answer):
                out.add(r)
    return frozenset(out)


def holds_answer(text: str, a: int, b: int, start: int, answer: str) -> bool:
    """Whether the sentence text[a:b] holds an answer: its span starts there (`start`, -1 for none), or the
    sentence repeats the answer's text (of two characters or more). What masking, striking and the
    ambiguity check all mean by "the sentence holding the answer"."""
    return a <= start < b or (len(answer) >= 2 and answer in text[a:b])


def _encode(embedder, texts: list[str], batch: int = 32) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([embedder.encode_queries(texts[i : i + batch]) for i in range(0, len(texts), batch)])


# ---------------------------------------------------------------- fitting


def fit_logistic(x: np.ndarray, y: np.ndarray, names: Sequence[str]) -> Logistic:
    return Logistic.fit(x, y, tuple(names), L2)


def question_matrix(model: Logistic, items: Sequence[Scenario]) -> np.ndarray:
    rows = []
    for s in items:
        logits = model.logit(s.features)
        rows.append(
            question_features(logits, s.features, SENTENCE_FEATURES, s.top_hit, s.asks_type, units(s.item.question))
        )
    return np.array(rows)


def fold_of(group: str, folds: int) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % folds


def train(examples: list[Scenario], signed: bool = False) -> tuple[AnswerModel, dict[str, object]]:
    """Fit both models on two thirds of the articles, report on the third, then refit on everything."""
    held = [s for s in examples if fold_of(s.item.group, 3) == 0]
    fit = [s for s in examples if fold_of(s.item.group, 3) != 0]
    report = {"held_out": evaluate_models(*_fit_both(fit, signed), held), "examples": _counts(examples)}
    sentence, question = _fit_both(examples, signed)
    return AnswerModel(sentence, question, Thresholds(), {}), report


def _fit_both(examples: list[Scenario], signed: bool = False) -> tuple[Logistic, Logistic]:
    answerable = [s for s in examples if s.answerable]
    sentence = _fit_sentences(answerable)
    # Cross-fitted logits: the question model sees sentence scores of questions the sentence model never saw.
    qx, qy = [], []
    for f in range(2):
        part = _fit_sentences([s for s in answerable if fold_of(s.item.group, 2) != f])
        mine = [s for s in examples if fold_of(s.item.group, 2) == f]
        qx.append(question_matrix(part, mine))
        qy.append(np.array([float(s.answerable) for s in mine]))
    signs = QUESTION_SIGNS if signed else None
    question = Logistic.fit(np.vstack(qx), np.concatenate(qy), QUESTION_FEATURES, L2, signs=signs)
    return sentence, question


def _fit_sentences(items: Sequence[Scenario]) -> Logistic:
    x = np.vstack([s.features for s in items])
    y = np.concatenate([s.labels for s in items])
    return fit_logistic(x, y, SENTENCE_FEATURES)


def evaluate_models(sentence: Logistic, question: Logistic, items: list[Scenario]) -> dict[str, float]:
    """Top-1 sentence accuracy on answerable questions, AUC, accuracy at 0.5 and ECE of the confidence."""
    answerable = [s for s in items if s.answerable]
    top1 = np.mean([s.labels[int(np.argmax(sentence.logit(s.features)))] for s in answerable])
    conf = sigmoid(question.logit(question_matrix(sentence, items)))
    y = np.array([float(s.answerable) for s in items])
    from rag.metrics import expected_calibration_error, roc_auc

    return {
        "questions": len(items),
        "sentence_top1": round(float(top1), 4),
        "answerable_auc": round(roc_auc(conf, y), 4),
        "accuracy_at_0.5": round(float(np.mean((conf >= 0.5) == (y == 1))), 4),
        "ece": round(expected_calibration_error(conf, y), 4),
    }


def _counts(examples: Sequence[Scenario]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in examples:
        key = f"{s.item.source}/{s.kind}/{'answerable' if s.answerable else 'unanswerable'}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


# ---------------------------------------------------------------- thresholds on dev


CONFIDENT = 0.9  # calibrated probability that the passages answer, from which an answer is not labelled "closest"
MAX_WRONG_ABSTENTIONS = 0.10  # of answerable dev questions: a refusal of a question the text answers costs most


def choose_thresholds(rows: Sequence[dict], max_wrong: float = MAX_WRONG_ABSTENTIONS) -> Thresholds:
    """Abstain where dev abstention F1 is best among thresholds that refuse at most `max_wrong` of the
    answerable dev questions; "confident" from CONFIDENT (0.9: the "closest passages" label says the passages
    may not answer, and a calibrated confidence below 0.9 says so one time in ten or more)."""
    from rag.metrics import abstention_prf

    conf = np.array([r["confidence"] for r in rows])
    gold = np.array([bool(r["unanswerable"]) for r in rows])
    answered_by_rules = np.array([r["never_mentioned"] for r in rows])
    grid = np.round(np.arange(0.02, 0.99, 0.01), 2)
    best, best_f1 = float(grid[0]), -1.0
    for t in grid:
        abstains = (conf < t) | answered_by_rules
        wrong = abstains[~gold].mean() if (~gold).any() else 0.0
        f1 = abstention_prf(list(abstains), list(gold))[2]
        if wrong <= max_wrong and f1 > best_f1:
            best, best_f1 = float(t), f1
    return Thresholds(abstain=best, confident=max(best, CONFIDENT))


CORRECTION_L2 = (1.0, 3.0, 10.0, 30.0, 100.0)  # shrinkage of the dev correction, chosen by cross-validation
CORRECTION_FOLDS = 5


def fit_correction(
    rows: Sequence[dict],
    public: AnswerModel,
    grid: Sequence[float] = CORRECTION_L2,
    folds: int = CORRECTION_FOLDS,
    signed: bool = False,
) -> tuple[Logistic, np.ndarray, dict[str, object]]:
    """The dev correction of the question model, the out-of-fold confidence of every row, and what was chosen.

    `signed` (the `--signed` variant): the public weight plus the correction's stays on the side QUESTION_SIGNS
    declares, so that the correction cannot bring back a weight the public fit was kept from.

    Rows the model did not decide (a name rule abstained, nothing retrieved: no "inputs") keep their confidence.
    Folds are by a hash of the question id; the shrinkage is the one with the best cross-validated AUC."""
    from rag.metrics import roc_auc

    decided = [i for i, r in enumerate(rows) if r.get("inputs") is not None and not r["never_mentioned"]]
    x = np.array([rows[i]["inputs"] for i in decided], np.float64)
    y = np.array([0.0 if rows[i]["unanswerable"] else 1.0 for i in decided])
    offset = public.question.logit(x)
    fold = np.array([fold_of(str(rows[i]["id"]), folds) for i in decided])
    scores: dict[float, float] = {}
    out_of_fold: dict[float, np.ndarray] = {}
    signs, prior = (QUESTION_SIGNS, public.question) if signed else (None, None)
    for l2 in grid:
        z = np.zeros(len(decided))
        for f in range(folds):
            part = fold != f
            fit = Logistic.fit(x[part], y[part], QUESTION_FEATURES, l2, offset[part], signs, prior)
            z[fold == f] = offset[fold == f] + fit.logit(x[fold == f])
        out_of_fold[l2], scores[l2] = z, roc_auc(z, y)
    best = max(grid, key=lambda v: (scores[v], v))  # ties: the stronger shrinkage
    correction = Logistic.fit(x, y, QUESTION_FEATURES, best, offset, signs, prior)
    confidence = np.array([float(r["confidence"]) for r in rows])
    confidence[decided] = sigmoid(out_of_fold[best])
    report = {"l2": best, "folds": folds, "cv_auc": {str(k): round(v, 4) for k, v in scores.items()}}
    return correction, confidence, report


def dev_rows(pipe_settings, model_path: Path, dataset: Path) -> list[dict]:  # type: ignore[no-untyped-def]
    """Run the dev dataset with the model at `model_path` and its thresholds at 0 (everything answered); each
    row also holds the question model's inputs ("inputs", None when no sentence was retrieved)."""
    from rag.answer import decide
    from rag.qa_eval import load_dataset, locate, score_question

    ds = load_dataset(dataset)
    settings = pipe_settings.replace(
        answer_model=str(model_path),
        abstain_threshold=0.0,
        confident_threshold=0.0,
        corpus=ds.corpus,
        index_name=f"train-dev-{ds.name}",
    )
    pipe = Pipeline(settings)
    pipe.ingest([ds.corpus], replace_all=True)
    docs = pipe.index().documents
    model = pipe.answer_settings().model
    rows = []
    for q in ds.questions:
        gold = locate(q, docs)
        row = score_question(pipe, q, gold)
        row["inputs"] = None
        if lang.supported(q.question):
            ev = pipe.evidence(q.question, filters=Filters(language=gold.pool_language))
            decision = decide(ev.index, ev.hits, ev.query, ev.language, ev.vectors, model)
            row["inputs"] = decision.inputs if decision.sentences else None
        rows.append(row)
    return rows


# ---------------------------------------------------------------- main


def data_hashes(files: Sequence[Path]) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest()[:16] for f in files}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "rag" / "models" / "answer.json")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "eval" / "out" / "answer-train")
    parser.add_argument(
        "--dev",
        type=Path,
        nargs="+",
        help="dev datasets to fit the correction and choose the thresholds on, together (never a held-out one)",
    )
    parser.add_argument("--xquad-questions", type=int, default=300, help="per language")
    parser.add_argument("--cmrc", type=int, nargs=2, default=(120, 400), metavar=("PARAGRAPHS", "QUESTIONS"))
    parser.add_argument("--drcd", type=int, nargs=2, default=(120, 400), metavar=("PARAGRAPHS", "QUESTIONS"))
    parser.add_argument(
        "--signed",
        action="store_true",
        help="keep each question-model weight, the dev correction's added, on the side "
        "rag.answer_model.QUESTION_SIGNS declares (a variant)",
    )
    parser.add_argument(
        "--masked",
        choices=("struck", "excluded"),
        default="struck",
        help="answer-masked negatives: the answer sentences cut out of the text of a second index (struck, the "
        "shipped model) or only left out of the candidates (excluded: the sixth model; docs/answer-model.md)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    files = {
        "xquad": [args.data / "xquad" / "xquad.en.json", args.data / "xquad" / "xquad.zh.json"],
        "cmrc": [args.data / "cmrc2018" / "cmrc2018_dev.json", args.data / "cmrc2018" / "cmrc2018_trial.json"],
        "drcd": [args.data / "drcd" / "DRCD_dev.json"],
    }
    missing = [str(f) for fs in files.values() for f in fs if not f.exists()]
    if missing:
        print(f"error: missing training data: {', '.join(missing)} (give --data)", file=sys.stderr)
        return 2
    corpora = [
        xquad_corpus(args.data / "xquad", random.Random(SEED), args.xquad_questions),
        squad_corpus("cmrc", files["cmrc"], random.Random(SEED), *args.cmrc),
        squad_corpus("drcd", files["drcd"], random.Random(SEED), *args.drcd),
    ]
    base = load_settings().replace(index_root=args.cache / "index")
    shared = Pipeline(base).embedders
    examples: list[Scenario] = []
    for corpus in corpora:
        pipe = Pipeline(base.replace(index_name=f"train-{corpus.name}"), shared)
        pipe.update(corpus.documents, _stage_bars(not args.quiet, corpus.name), replace_all=True)
        struck = None
        if args.masked == "struck":
            cut = struck_corpus(corpus)
            struck = Pipeline(base.replace(index_name=f"train-{cut.name}"), shared)
            struck.update(cut.documents, _stage_bars(not args.quiet, cut.name), replace_all=True)
        examples += scenarios(pipe, corpus, not args.quiet, struck, masked=struck is None)
    model, report = train(examples, args.signed)
    model = replace(
        model,
        meta={
            "version": datetime.now(UTC).strftime("%Y%m%d"),
            "trained": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": {name: data_hashes(fs) for name, fs in files.items()},
            "samples": {c.name: {"documents": len(c.documents), "questions": len(c.items)} for c in corpora},
            "embedders": list(base.embedders),
            "k": K,
            "seed": SEED,
            "question_signs": QUESTION_SIGNS if args.signed else None,
            **report,
        },
    )
    model.save(args.out)
    load_answer_model.cache_clear()  # the dev run below reads the model just written, not one loaded before
    if args.dev:
        rows = [r for dev in args.dev for r in dev_rows(base, args.out, dev)]  # base's index_root is the cache
        for r in rows:
            r["never_mentioned"] = r["abstained"]  # with thresholds at 0 only the name rules abstain
        correction, out_of_fold, chosen = fit_correction(rows, model, signed=args.signed)
        dev_names = "+".join(dev.name for dev in args.dev)
        for r, c in zip(rows, out_of_fold, strict=True):
            r["confidence"] = float(c)
        thresholds = choose_thresholds(rows)
        report["dev_correction"] = chosen
        model = replace(
            model,
            thresholds=thresholds,
            correction=correction,
            meta={**model.meta, "thresholds_from": dev_names, "corrected_on": dev_names, **report},
        )
        model.save(args.out)
    print(json.dumps({"thresholds": vars_of(model.thresholds), **report}, indent=1), file=sys.stderr)
    print(f"wrote {args.out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


def vars_of(t: Thresholds) -> dict[str, float]:
    return {"abstain": t.abstain, "confident": t.confident}


if __name__ == "__main__":
    sys.exit(main())
