"""Where a question's time goes on a bench-scale index, and whether a change altered what it answers.

Runs on an index `eval/bench_scale.py` built (`--work`, `--size`), with its projection encoders (`--real` also runs
the real models, as the benchmark does):

    python eval/profile_serve.py --size 100000                  # cProfile of the 175 mmsp-dev asks, stage timings
    python eval/profile_serve.py --size 100000 --snapshot a.json  # every question's hits and answer, to diff
    python eval/profile_serve.py --size 100000 --names          # name checks: postings against the text scan

Two snapshots taken with different code on the same index are equal (`cmp a.json b.json`) when retrieval and the
answers did not change.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

EXTRA = [  # out-of-scope questions beside mmsp-dev's, for the name checks
    "Who won the World Cup?",
    "谁赢得了世界杯？",
    "What did Xi Jinping say in Hangzhou?",
    "How do I bake sourdough bread?",
    "怎么做红烧肉？",
    "Did MMSP II experts visit Portugal?",
]


def main(argv: list[str] | None = None) -> int:
    import bench_scale as b

    from rag.pipeline import Pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--real", action="store_true", help="also run the real encoders (their cost included)")
    parser.add_argument("--snapshot", type=Path, help="write every question's hits and answer here")
    parser.add_argument("--names", action="store_true", help="compare the name checks with the scan")
    args = parser.parse_args(argv)
    pipe = Pipeline(b.scale_settings(args.work.resolve(), args.size, "faiss"), b.scale_embedders(real=args.real))
    t = time.perf_counter()
    index = pipe.index()
    print(f"open {time.perf_counter() - t:.2f} s {b.rss_mb()}", flush=True)
    questions = b.scale_questions(0)
    if args.names:
        return _names(index, questions + EXTRA)
    if args.snapshot:
        rows = []
        for q in questions:
            hits, a = pipe.search(q), pipe.ask(q)
            rows.append(
                {
                    "q": q,
                    "hits": [(h.chunk.chunk_id, round(h.score, 5), h.chunk.text[:40], h.also_in) for h in hits],
                    "verdict": a.verdict,
                    "answer": a.answer,
                    "cites": [(c.doc_id, c.start, c.end) for c in a.citations],
                }
            )
        args.snapshot.write_text(json.dumps(rows, ensure_ascii=False, indent=0), "utf-8")
        return 0
    t = time.perf_counter()
    pipe.warm_up()
    for q in questions[:5]:
        pipe.ask(q)
    print(f"warm-up {time.perf_counter() - t:.1f} s", flush=True)
    profile, ms, stages = cProfile.Profile(), [], {}
    profile.enable()
    for q in questions:
        t = time.perf_counter()
        answer = pipe.ask(q)
        ms.append((time.perf_counter() - t) * 1000)
        for k, v in (answer.timings_ms or {}).items():
            stages.setdefault(k, []).append(v)
    profile.disable()
    print(f"ask p50 / p95 {np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f} ms; load {os.getloadavg()}")
    for k, v in stages.items():
        print(f"  {k}: p50 {np.percentile(v, 50):.1f} ms, p95 {np.percentile(v, 95):.1f} ms")
    print(b.rss_mb())
    pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
    return 0


def _names(index: object, questions: list[str]) -> int:
    """The index's name checks (per-segment postings) against `scope.Corpus` (the scan of the whole text)."""
    from rag.scope import Corpus, off_topic, unknown_names

    postings = index.corpus  # type: ignore[attr-defined]
    scan = Corpus.of((d.text, d.language) for d in index.documents.values())  # type: ignore[attr-defined]
    took: dict[str, list[float]] = {"postings": [], "scan": []}
    differ = 0
    for q in questions:
        got = []
        for name, archive in (("postings", postings), ("scan", scan)):
            t = time.perf_counter()
            got.append((unknown_names(q, archive), off_topic(q, archive)))
            took[name].append((time.perf_counter() - t) * 1000)
        if got[0] != got[1]:
            differ += 1
            print("DIFFERENT", q, got)
    for name, ms in took.items():
        print(f"{name}: mean {np.mean(ms):.2f} ms, p50 {np.percentile(ms, 50):.2f}, p95 {np.percentile(ms, 95):.2f}")
    print(f"{len(questions)} questions, {differ} with different name checks")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
