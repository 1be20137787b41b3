"""Pipeline benchmark on the sample corpus: cold index build, warm `ask` latency, peak memory, thread settings.

Builds the default index (use + e5 + BM25, the shipped Settings) from data/newsletters/ into a temporary folder,
then asks every question of a dataset once after one warm-up question, one at a time as the app does.
Usage: .venv/bin/python eval/bench_pipeline.py [--json] [--dataset eval/datasets/mmsp-dev] [--limit N]
(`make bench`). Timings are wall-clock and carry whatever else the machine is doing: the load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.embed import E5Embedder, UseEmbedder
from rag.metrics import percentile
from rag.qa_eval import git_commit, load_dataset
from rag.settings import PROJECT_ROOT, Settings

GOALS = {"ask_p50_ms": 50.0, "ask_p95_ms": 150.0, "peak_rss_mb": 1024.0}
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def dirty() -> bool:
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    except OSError:
        return False
    return bool(out.stdout.strip())


def rss_mb() -> dict[str, float]:
    """Peak resident set of this process (getrusage: KiB on Linux) and the current one (psutil)."""
    import psutil

    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_now_mb": psutil.Process().memory_info().rss / 2**20,
    }


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "mean": sum(values) / len(values),
        "max": max(values),
        "n": len(values),
    }


def threads(pipe: Any) -> dict[str, Any]:
    """Thread settings as used: the embedders' own, the environment, and what threadpoolctl sees loaded."""
    from threadpoolctl import threadpool_info

    use, e5 = pipe.embedders.get("use"), pipe.embedders.get("e5")
    return {
        "UseEmbedder.threads default": inspect.signature(UseEmbedder.__init__).parameters["threads"].default,
        "UseEmbedder._threads": getattr(use, "_threads", None),
        "E5Embedder query threads": getattr(e5, "_query_threads", None),
        "E5Embedder document threads": getattr(e5, "_document_threads", None),
        "env": {v: os.environ.get(v, "") for v in THREAD_VARS},
        "threadpools": [
            {k: p.get(k) for k in ("user_api", "internal_api", "num_threads", "version")} for p in threadpool_info()
        ],
    }


def busy_cpu_s() -> tuple[float, float]:
    """CPU seconds spent by the whole machine (from /proc/stat) and by this process, so far."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    return busy, sum(os.times()[:4])


def run(
    dataset: Path, limit: int | None, root: Path, use_threads: int | None = None, e5_threads: int | None = None
) -> dict[str, Any]:
    from rag.pipeline import Pipeline

    load_before = os.getloadavg()
    settings = Settings(index_root=root / "index", data_dir=root / "var")  # the shipped defaults, fresh folder
    embedders: dict[str, Any] | None = None
    if use_threads is not None or e5_threads is not None:  # only when asked: by default what rag/embed.py says
        embedders = {
            "use": UseEmbedder() if use_threads is None else UseEmbedder(threads=use_threads),
            "e5": E5Embedder() if e5_threads is None else E5Embedder(query_threads=e5_threads),
        }
    pipe = Pipeline(settings, embedders)

    t0 = time.perf_counter()
    for emb in pipe.embedders.values():  # models load lazily: time that apart from the build
        emb.encode_documents(["warm up"])
    load_s = time.perf_counter() - t0

    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        marks[stage] = time.perf_counter()  # the last call of a stage marks its end; stages run one after another

    t0 = time.perf_counter()
    report = pipe.ingest([settings.corpus], progress=progress)
    build_s = time.perf_counter() - t0
    stages, prev = {}, t0
    for stage, end in sorted(marks.items(), key=lambda kv: kv[1]):
        stages[stage] = round(end - prev, 3)
        prev = end
    stages["write index"] = round(t0 + build_s - prev, 3)
    counts = pipe.index().manifest.counts

    questions = load_dataset(dataset).questions[:limit] if limit else load_dataset(dataset).questions
    pipe.warm_up()
    pipe.ask(questions[0].question)  # one warm-up question, untimed
    wall: list[float] = []
    per_stage: dict[str, list[float]] = {}
    by_language: dict[str, list[float]] = {}
    abstained = 0
    machine0, mine0, wall0 = *busy_cpu_s(), time.perf_counter()
    for q in questions:
        t = time.perf_counter()
        answer = pipe.ask(q.question)
        ms = (time.perf_counter() - t) * 1000
        wall.append(ms)
        by_language.setdefault(q.language, []).append(ms)
        for stage, value in answer.timings_ms.items():
            per_stage.setdefault(stage, []).append(value)
        abstained += answer.abstained
    machine1, mine1 = busy_cpu_s()
    others = max(0.0, (machine1 - machine0) - (mine1 - mine0)) / (time.perf_counter() - wall0)
    memory = rss_mb()
    ask = summary(wall)
    result = {
        "benchmark": "eval/bench_pipeline.py",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit() or None,
        "uncommitted_changes": dirty(),
        "machine": {"nproc": os.cpu_count(), "cpu": cpu_model(), "python": sys.version.split()[0]},
        "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"embedders": list(settings.embedders), "lexical": settings.lexical, "k": settings.k},
        "threads": threads(pipe),
        "build": {
            "model_load_s": round(load_s, 2),
            "seconds": round(build_s, 2),
            "documents": counts["documents"],
            "chunks": report.chunks,
            "chunks_per_s": round(report.chunks / build_s, 2),
            "sentences_embedded": counts["sentences"],
            "embedders": len(pipe.embedders),
            "stages_s": stages,
            "errors": [str(e) for e in report.errors],
        },
        "ask": {
            "dataset": str(dataset.relative_to(PROJECT_ROOT) if dataset.is_relative_to(PROJECT_ROOT) else dataset),
            "questions": len(wall),
            "abstained": abstained,
            "other_cpu_cores": round(others, 2),
            "wall_ms": ask,
            "by_language_ms": {lang: summary(v) for lang, v in by_language.items()},
            "stages_ms": {stage: summary(v) for stage, v in per_stage.items()},
        },
        "memory": memory,
    }
    result["goals"] = {
        "ask_p50_ms": {"goal": GOALS["ask_p50_ms"], "value": ask["p50"], "met": ask["p50"] <= GOALS["ask_p50_ms"]},
        "ask_p95_ms": {"goal": GOALS["ask_p95_ms"], "value": ask["p95"], "met": ask["p95"] <= GOALS["ask_p95_ms"]},
        "peak_rss_mb": {
            "goal": GOALS["peak_rss_mb"],
            "value": memory["peak_rss_mb"],
            "met": memory["peak_rss_mb"] <= GOALS["peak_rss_mb"],
        },
    }
    return result


def table(r: dict[str, Any]) -> str:
    b, a, m, t = r["build"], r["ask"], r["memory"], r["threads"]
    changes = " + uncommitted changes" if r["uncommitted_changes"] else ""
    lines = [
        f"Pipeline benchmark — commit {(r['commit'] or '?')[:12]}{changes}",
        f"machine: {r['machine']['nproc']} CPUs, {r['machine']['cpu']}, Python {r['machine']['python']}",
        f"load average (1/5/15 min): before {r['load_average']['before']}, after {r['load_average']['after']}",
        f"settings: embedders {','.join(r['settings']['embedders'])}"
        f"{' + bm25' if r['settings']['lexical'] else ''}, k {r['settings']['k']}",
        f"threads: UseEmbedder threads={t['UseEmbedder._threads']} (default {t['UseEmbedder.threads default']}), "
        f"E5Embedder threads: questions {t['E5Embedder query threads']}, "
        f"passages {t['E5Embedder document threads']}; "
        + ", ".join(f"{k}={v or 'unset'}" for k, v in t["env"].items()),
        "threadpools: "
        + "; ".join(f"{p['internal_api']} ({p['user_api']}) {p['num_threads']} threads" for p in t["threadpools"]),
        "",
        "Index build (from scratch, sample corpus)",
        f"  model load            {b['model_load_s']:>8.2f} s",
        f"  build                 {b['seconds']:>8.2f} s   ({b['documents']} newsletters)",
        f"  chunks                {b['chunks']:>8d}     {b['chunks_per_s']:.2f} chunks/s",
        f"  sentences embedded    {b['sentences_embedded']:>8d}     (by each of {b['embedders']} embedders)",
    ]
    lines += [f"    {stage:<22}{sec:>7.2f} s" for stage, sec in b["stages_s"].items()]
    lines += [
        "",
        f"Warm ask ({a['questions']} questions of {a['dataset']}, each once after one warm-up; "
        f"{a['abstained']} abstained; other processes used {a['other_cpu_cores']:.2f} of the CPUs meanwhile)",
        f"  {'':<22}{'p50':>9}{'p95':>9}{'mean':>9}{'max':>9}{'n':>6}",
    ]
    rows = [("wall (ms)", a["wall_ms"])]
    rows += [(f"  {lang}", s) for lang, s in a["by_language_ms"].items()]
    rows += [(f"stage {stage}", s) for stage, s in a["stages_ms"].items()]
    lines += [
        f"  {name:<22}{s['p50']:>9.1f}{s['p95']:>9.1f}{s['mean']:>9.1f}{s['max']:>9.1f}{s['n']:>6d}" for name, s in rows
    ]
    lines += [
        "",
        f"Memory: peak RSS {m['peak_rss_mb']:.0f} MB (getrusage ru_maxrss), "
        f"RSS at end {m['rss_now_mb']:.0f} MB (psutil)",
        "",
        "Goals",
    ]
    for name, g in r["goals"].items():
        lines.append(f"  {name:<14} ≤ {g['goal']:g}: {g['value']:.1f} — {'met' if g['met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "eval" / "datasets" / "mmsp-dev")
    ap.add_argument("--limit", type=int, help="only the first N questions (default: all)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--use-threads", type=int, help="override UseEmbedder(threads=...) (default: as in rag/embed.py)")
    ap.add_argument("--e5-threads", type=int, help="override E5Embedder(query_threads=...) (default: rag/embed.py)")
    args = ap.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        result = run(args.dataset.resolve(), args.limit, Path(tmp), args.use_threads, args.e5_threads)
    print(json.dumps(result, ensure_ascii=False, indent=2) if args.json else table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
