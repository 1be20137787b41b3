"""The Milvus backend (Milvus Lite) against the FAISS folder, through the pipeline, on a generated archive.

The dense channel is the hash embedder (instant, 256-d) so the figures are the store's own costs, not a model's:
build (chunk, BM25, write), adding one newsletter, opening, warm `search` and `ask` p50/p95 over the mmsp-dev
questions, size on disk and the process's RSS. Each backend runs in its own process.

Usage: .venv/bin/python eval/bench_milvus.py --issues 100 [--questions 80] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _percentiles(ms: list[float]) -> dict[str, float]:
    from rag.metrics import percentile

    return {"p50": round(percentile(ms, 50), 1), "p95": round(percentile(ms, 95), 1)}


def run_one(backend: str, archive: Path, extra: Path, work: Path, questions: int) -> dict[str, object]:
    """Build, grow, reopen and query one backend's index in this process."""
    import psutil

    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline
    from rag.qa_eval import load_dataset
    from rag.settings import Settings

    settings = Settings(
        index_root=work / "index", data_dir=work / "var", embedders=("hash",), index_backend=backend, corpus=archive
    )
    qs = [q.question for q in load_dataset(ROOT / "eval" / "datasets" / "mmsp-dev").questions[:questions]]
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    t = time.perf_counter()
    report = pipe.ingest([archive])
    build = time.perf_counter() - t
    t = time.perf_counter()
    pipe.ingest([extra])
    add_one = time.perf_counter() - t
    if backend == "milvus":
        from rag import milvus_store

        milvus_store.close(milvus_store.resolve_uri(settings))  # the next open reads the file
    fresh = Pipeline(settings, {"hash": HashEmbedder()})
    t = time.perf_counter()
    index = fresh.index()
    opened = time.perf_counter() - t
    fresh.warm_up()
    for q in qs[:5]:
        fresh.ask(q)
    timings: dict[str, list[float]] = {"search": [], "ask": []}
    for q in qs:
        for name in timings:
            t = time.perf_counter()
            getattr(fresh, name)(q)
            timings[name].append((time.perf_counter() - t) * 1000)
    return {
        "backend": backend,
        "documents": len(index.documents),
        "chunks": len(index.chunks),
        "sentences": len(index.sentences),
        "build_s": round(build, 1),
        "build_chunks_per_s": round(report.chunks / build, 1),
        "add_one_newsletter_s": round(add_one, 2),
        "open_s": round(opened, 2),
        "search_ms": _percentiles(timings["search"]),
        "ask_ms": _percentiles(timings["ask"]),
        "questions": len(qs),
        "disk_mb": round(_size(settings.index_dir) / 1e6, 1),
        "rss_mb": round(psutil.Process().memory_info().rss / 1e6),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issues", type=int, default=100, help="issues of the generated archive (× en + zh)")
    parser.add_argument("--questions", type=int, default=80, help="mmsp-dev questions timed per backend")
    parser.add_argument("--backends", default="faiss,milvus")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one backend, print JSON
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        figures = run_one(args.one, args.work / "archive", args.work / "extra", args.work / args.one, args.questions)
        print(json.dumps(figures))
        return 0
    from gen_archive import generate

    work = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    try:
        generate(work / "archive", args.issues, 0)
        extra = generate(work / "extra-all", args.issues + 1, 0)[-2:]  # one more issue, both editions
        (work / "extra").mkdir()
        for f in extra:
            shutil.copy(f, work / "extra" / f.name)
            meta = f.with_name(f.name.replace(".txt", ".meta.json"))
            if meta.exists():
                shutil.copy(meta, work / "extra" / meta.name)
        rows = []
        for backend in args.backends.split(","):
            cmd = [sys.executable, __file__, "--one", backend, "--work", str(work), "--questions", str(args.questions)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps({"issues": args.issues, "results": rows}, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
