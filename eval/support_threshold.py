"""Choose the support threshold of generated sentences (rag.generate.SUPPORT_THRESHOLD) on the dev set.

A generated sentence is kept when the passage it cites supports it: `rag.generate.support`, the mean over the
pipeline's encoders of the best cosine between the sentence and the cited passage's sentences (or their
counterpart in the other edition). On eval/datasets/mmsp-dev, for every answerable question answered with a
citation of its gold evidence, the reference answer written as a sentence is scored against that citation
(supported) and against the gold citations of the other questions whose passages hold none of its evidence (not
supported). The threshold maximising Youden's J (TPR − FPR) is printed with the ROC AUC; so is the share of
each class kept at the threshold, split by whether the sentence and the passage are in the same language.

    python eval/support_threshold.py [--dataset eval/datasets/mmsp-dev] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.generate import support  # noqa: E402
from rag.lang import base  # noqa: E402
from rag.metrics import roc_auc  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.qa_eval import load_dataset, locate  # noqa: E402
from rag.retrieve import Filters  # noqa: E402
from rag.settings import load_settings  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=ROOT / "eval" / "datasets" / "mmsp-dev")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dataset = load_dataset(args.dataset)
    settings = load_settings().replace(index_name="eval-default", corpus=dataset.corpus)
    pipe = Pipeline(settings)
    pipe.ingest([dataset.corpus], replace_all=True)
    index = pipe.index()
    gold_citations = {}  # qid -> (citation, language of question, reference, gold spans)
    for q in dataset.questions:
        if q.unanswerable or not q.answer.strip():
            continue
        gold = locate(q, index.documents)
        answer = pipe.ask(q.question, filters=Filters(language=gold.pool_language), llm=False)
        for c in answer.citations:
            if any(d == c.doc_id and max(c.start, s) < min(c.end, e) for d, s, e in gold.spans):
                gold_citations[q.qid] = (c, q.language, q.answer, gold.spans)
                break
    qids = sorted(gold_citations)
    texts = [gold_citations[i][2] for i in qids]
    vectors = {name: e.encode_queries(texts) for name, e in pipe.embedders.items()}
    scores, labels, same_language = [], [], []
    for i, qi in enumerate(qids):
        mine = {name: v[i] for name, v in vectors.items()}
        _c, language, _ref, spans = gold_citations[qi]
        for qj in qids:
            c = gold_citations[qj][0]
            end = c.passage_start + len(c.passage)
            holds = any(d == c.doc_id and max(c.passage_start, s) < min(end, e) for d, s, e in spans)
            if qj != qi and holds:
                continue  # another question's passage that holds this one's evidence too: not a negative
            scores.append(support(mine, index, c))
            labels.append(float(qj == qi))
            same_language.append(base(c.language) == base(language))
    s, y, same = np.array(scores), np.array(labels), np.array(same_language)
    best = max(
        (float(t) for t in np.unique(s)),
        key=lambda t: ((s[y == 1] >= t).mean() - (s[y == 0] >= t).mean(), -t),
    )
    report = {
        "dataset": dataset.name,
        "positives": int(y.sum()),
        "negatives": int((1 - y).sum()),
        "auc": roc_auc(s.tolist(), y.tolist()),
        "threshold": round(best, 3),
        "tpr": float((s[y == 1] >= best).mean()),
        "fpr": float((s[y == 0] >= best).mean()),
        "tpr_same_language": float((s[(y == 1) & same] >= best).mean()) if ((y == 1) & same).any() else None,
        "tpr_cross_language": float((s[(y == 1) & ~same] >= best).mean()) if ((y == 1) & ~same).any() else None,
        "embedders": list(settings.embedders),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
