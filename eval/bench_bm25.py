"""The BM25 channel alone on a bench_scale index (issue 11): retrieval's unfiltered BM25 top-k per question.

Times `rag.retrieve._top_scores` (what `search` kept before it read BM25's top rows without an array over every
row) for the 175 mmsp-dev questions in their own language, after five warm-up questions; the first question's
time (numba's import and its compile or cache read, when the scorer is compiled) is printed apart. `--snapshot`
writes every question's kept rows and scores, to compare two code versions byte for byte (`cmp`).

    flock /tmp/bench.lock env PYTHONPATH=<tree> nice .venv/bin/python <tree>/eval/bench_bm25.py --size 1000000

Run each tree's own copy: bench_scale puts its tree first on sys.path.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--snapshot", type=Path, help="write each question's kept (rows, scores) here as JSON")
    args = parser.parse_args()

    from rag import lang, lexical
    from rag.pipeline import Pipeline
    from rag.retrieve import _top_scores

    pipe = Pipeline(bench_scale.scale_settings(args.work, args.size, "faiss"), bench_scale.scale_embedders(real=False))
    t = time.perf_counter()
    lex = pipe.index().lexical
    print(f"open {time.perf_counter() - t:.2f} s; scorer {lexical.__file__}", flush=True)
    questions = bench_scale.scale_questions(0)
    t = time.perf_counter()
    _top_scores(lex, questions[0], lang.detect(questions[0]), 200)
    compiled = getattr(lexical, "_compiled", lambda: None)() is not None
    print(f"first question {(time.perf_counter() - t) * 1000:.0f} ms ({'compiled' if compiled else 'numpy'})")
    for q in questions[:5]:
        _top_scores(lex, q, lang.detect(q), 200)
    ms, snapshot = [], []
    for q in questions:
        t = time.perf_counter()
        kept = _top_scores(lex, q, lang.detect(q), 200)
        ms.append((time.perf_counter() - t) * 1000)
        rows = np.flatnonzero(kept)
        snapshot.append([rows.tolist(), kept[rows].tolist()])
    p50, p95 = np.percentile(ms, 50), np.percentile(ms, 95)
    print(f"{len(ms)} questions: BM25 p50 {p50:.1f} ms, p95 {p95:.1f} ms, mean {np.mean(ms):.1f}, max {max(ms):.1f}")
    if args.snapshot:
        args.snapshot.write_text(json.dumps(snapshot))


if __name__ == "__main__":
    main()
