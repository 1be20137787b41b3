"""What reading the question against each candidate sentence would cost: one e5-small pass per question.

A reader or cross-encoder reads "question + sentence" together, one forward pass per pair. No installable package
ships one, so this times the smallest multilingual encoder the project ships (multilingual-e5-small, on the
torch runtime and one thread, as questions run) on the pairs the answer stage sees: the top 3 candidate sentences
and all of them, per question of a dataset, on the sample index. It bounds a reader's cost from below (a reader
adds its head and reads longer inputs), against the warm `ask` budget of p50 ≤ 50 ms for everything.

Usage: .venv/bin/python eval/bench_reader_cost.py [--dataset eval/datasets/mmsp-dev] [--limit 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("eval/datasets/mmsp-dev"))
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--top", type=int, default=3, help="the first N candidates, as well as all of them")
    args = parser.parse_args()

    from rag.embed import E5Embedder
    from rag.features import candidates
    from rag.pipeline import Pipeline
    from rag.qa_eval import load_dataset
    from rag.settings import Settings

    pipe = Pipeline(Settings())
    pipe.warm_up()
    reader = E5Embedder(runtime="torch", query_threads=1)
    reader.encode_queries(["warm up"])
    top, every, counts = [], [], []
    for q in load_dataset(args.dataset).questions[: args.limit]:
        ev = pipe.evidence(q.question)
        found = candidates(ev.index, list(ev.hits), ev.query, ev.language, ev.vectors)
        pairs = []
        for c in found.items:
            doc_id, a, b = ev.index.sentences[c.row]
            pairs.append(f"{q.question} {ev.index.documents[doc_id].text[a:b]}")
        if not pairs:
            continue
        counts.append(len(pairs))
        t = time.perf_counter()
        reader.encode_queries(pairs[: args.top])
        top.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        reader.encode_queries(pairs)
        every.append((time.perf_counter() - t) * 1000)
    print(f"{len(counts)} questions of {args.dataset}, candidates per question: median {np.median(counts):.0f}")
    for name, ms in ((f"top {args.top} pairs", top), ("all pairs", every)):
        print(f"  {name:12s} p50 {np.percentile(ms, 50):6.0f} ms   p95 {np.percentile(ms, 95):6.0f} ms")


if __name__ == "__main__":
    main()
