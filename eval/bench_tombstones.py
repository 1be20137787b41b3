"""Questions on an index with deleted rows (issue 11): `search` latency and the ranked hits, to compare code.

    # once: a copy of a bench_scale index, with N newsletters removed (tombstones, no merge)
    .venv/bin/python eval/bench_tombstones.py --work /tmp/tomb --from /tmp/bench-scale/index/n100000 --remove 3
    # then with each version of the code (PYTHONPATH=<tree>):
    .venv/bin/python eval/bench_tombstones.py --work /tmp/tomb --out hits-A.json
    .venv/bin/python eval/bench_tombstones.py --compare hits-A.json hits-B.json

Uses bench_scale's settings and projection encoders (no real models) and mmsp-dev's 175 questions.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    import bench_scale as b

    from rag.pipeline import Pipeline

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/tomb"))
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--from", dest="source", type=Path, help="index folder to copy into the work folder")
    ap.add_argument("--remove", type=int, default=0, help="remove this many newsletters (the first by id)")
    ap.add_argument("--out", type=Path, help="write every question's ranked hits here")
    ap.add_argument("--compare", type=Path, nargs=2, help="two --out files: how many rankings differ")
    args = ap.parse_args(argv)
    if args.compare:
        a, c = (json.loads(p.read_text("utf-8")) for p in args.compare)
        order = sum(1 for x, y in zip(a, c, strict=True) if [h for h, _ in x] != [h for h, _ in y])
        first = sum(1 for x, y in zip(a, c, strict=True) if x[:1] and y[:1] and x[0][0] != y[0][0])
        print(f"{len(a)} questions: {order} ranked differently, {first} with another first passage")
        return 0
    folder = args.work / "index" / f"n{args.size}"
    if args.source:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(args.source, folder)
    pipe = Pipeline(b.scale_settings(args.work.resolve(), args.size, "faiss"), b.scale_embedders(real=False))
    if args.remove:
        victims = sorted(pipe.index().documents)[: args.remove]
        pipe.remove(victims)
        live = pipe.index().live
        print(f"removed {', '.join(victims)}: {0 if live is None else int((~live).sum())} deleted rows")
        return 0
    questions = b.scale_questions(0)
    for q in questions[:5]:
        pipe.search(q)
    ms, hits = [], []
    for q in questions:
        t = time.perf_counter()
        found = pipe.search(q)
        ms.append((time.perf_counter() - t) * 1000)
        hits.append([(h.chunk.chunk_id, round(h.score, 6)) for h in found])
    deleted = pipe.index().live is not None
    print(f"deleted rows: {deleted}; search p50 {np.percentile(ms, 50):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms")
    if args.out:
        args.out.write_text(json.dumps(hits), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
