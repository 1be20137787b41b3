"""Grid-search the answer stage (threshold, margins) on a DEV dataset; prints the best settings.

Usage: python eval/tune_answer.py eval/datasets/mmsp-dev
Retrieval runs once per question; only the answer stage is re-run per setting. Never point it at held-out data.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import replace
from pathlib import Path

from rag import lang
from rag.answer import AnswerSettings, compose
from rag.metrics import abstention_prf
from rag.pipeline import Pipeline
from rag.retrieve import Filters, search
from rag.settings import load_settings


def main(dataset: Path) -> None:
    pipe = Pipeline(load_settings())
    index = pipe.index()
    cases = []
    for line in (dataset / "questions.jsonl").read_text("utf-8").splitlines():
        q = json.loads(line)
        gold = []
        for ev in q["evidence"]:
            text = index.documents[ev["doc_id"]].text
            s = text.index(ev["quote"])
            gold.append((ev["doc_id"], s, s + len(ev["quote"])))
        langs = {index.documents[d].language for d, _, _ in gold}
        filters = Filters(language=langs.pop()) if len(langs) == 1 else Filters()
        language = lang.detect(q["question"])
        text = lang.to_simplified(q["question"]) if language == "zh-hant" else q["question"]
        qv = {n: e.encode_queries([text])[0] for n, e in pipe.embedders.items()}
        hits = search(index, text, qv, pipe.fusion(), filters, pipe.settings.k, language)
        cases.append((q, text, language, hits, qv, gold))
    base = pipe.answer_settings()
    results = []
    grid = itertools.product([0.0, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1], [0.05], [0.1, 0.2, 0.3, 0.4, 0.5], [1, 2, 3])
    for threshold, margin, type_margin, max_sentences in grid:
        s = replace(base, threshold=threshold, margin=margin, type_margin=type_margin, max_sentences=max_sentences)
        results.append((*evaluate(cases, index, s), s))
    results.sort(key=lambda r: -(r[0] + r[1]))
    for f1, prec, s in results[:10]:
        print(
            f"abstention F1 {f1:.3f}  citation precision {prec:.3f}  threshold {s.threshold} margin {s.margin} "
            f"type_margin {s.type_margin} max_sentences {s.max_sentences}"
        )


def evaluate(cases, index, settings: AnswerSettings) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    predicted, gold_abstain, precision = [], [], []
    for q, text, language, hits, qv, gold in cases:
        a = compose(q["question"], text, language, index, hits, qv, settings)
        predicted.append(a.abstained)
        gold_abstain.append(q["unanswerable"])
        if not q["unanswerable"] and a.citations:
            ok = [any(c.doc_id == d and c.start < e and c.end > s for d, s, e in gold) for c in a.citations]
            precision.append(sum(ok) / len(ok))
        elif not q["unanswerable"]:
            precision.append(0.0)
    return abstention_prf(predicted, gold_abstain)[2], sum(precision) / len(precision)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
