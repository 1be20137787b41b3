"""Scale benchmark (issue 11): an index of 10k, 100k and 1M chunks — build, size, open, memory, warm `ask`, and
adding one newsletter while questions are asked.

The archive is `eval/gen_archive.py` (the sample newsletter's real English and Chinese text recombined, with
sidecar or front-matter metadata), as many issues as the size needs. Everything but the dense vectors is the
real pipeline: cleaning, chunking, sentences, the bilingual BM25 with dictionary expansion, segments, HNSW,
the answer stage. **The dense vectors are random projections** (hashed words and CJK characters times a fixed
Gaussian matrix, normalised) of the same dimensions as the shipped channels (`use` 512, `e5` 384): e5 on 2 cores
embeds about 13 texts a second, so a real 100k-chunk build (with its ~400k sentences) would take ~10 hours.
Where a measured step includes encoding — every question, and the texts of the newsletter added — the real
`use` and `e5` models run on the same texts and their output is thrown away, so those timings pay the real
encoder cost (`--no-real-cost` turns that off). Retrieval quality is not measured here (see `eval xquad`).

Each size runs in fresh processes: `build` (ingest the archive in batches of at most `--batch-chunks`
chunks, one segment each), then `serve` (open, warm up, ask every mmsp-dev question; RSS from /proc), and at
`--add-at` sizes `add`: a second process ingests one new issue (English + Chinese edition) while the serving
process keeps asking; asks whose start falls inside the writer's ingest call are "during".

Usage:
    .venv/bin/python eval/bench_scale.py --sizes 10000,100000,1000000 [--backend faiss] [--out FILE]
`--backend` names the index backend (`Settings.index_backend`, default `faiss`: the embedded FAISS folder).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))

DIMS = {"use": 512, "e5": 384}
BUCKETS = 1 << 14
_TOKEN = re.compile(r"[a-z0-9]+|[\u4e00-\u9fff]")


class Projection:
    """Random-projection vectors of hashed tokens (deterministic); with `real`, the real model is also run
    on every text (its output discarded) so that timings pay the real encoding cost."""

    def __init__(self, name: str, dim: int, real: Any = None) -> None:
        self.id, self.dim, self.real = name, dim, real
        self.real_seconds = 0.0  # spent in the real model's encode_documents
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        self.matrix = rng.standard_normal((BUCKETS, dim)).astype(np.float32)

    def _project(self, texts: list[str]) -> np.ndarray:
        from scipy import sparse

        rows, cols = [], []
        for i, t in enumerate(texts):
            toks = _TOKEN.findall(t.lower())
            grams = toks + [a + b for a, b in itertools.pairwise(toks)]
            rows += [i] * len(grams)
            cols += [zlib.crc32(g.encode()) % BUCKETS for g in grams]
        m = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), BUCKETS))
        v = np.asarray(m @ self.matrix, np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    def encode_documents(self, texts: Any) -> np.ndarray:
        texts = list(texts)
        if self.real is not None:
            t = time.perf_counter()
            self.real.encode_documents(texts)
            self.real_seconds += time.perf_counter() - t
        return self._project(texts)

    def encode_queries(self, texts: Any) -> np.ndarray:
        texts = list(texts)
        if self.real is not None:
            self.real.encode_queries(texts)
        return self._project(texts)


def scale_settings(work: Path, size: int, backend: str) -> Any:
    from rag.settings import Settings

    s = Settings(index_root=work / "index", index_name=f"n{size}", data_dir=work / "var", embedders=tuple(DIMS))
    return s if backend == "faiss" else s.replace(index_backend=backend)  # the store factory picks the backend


def scale_embedders(real: bool) -> dict[str, Any]:
    reals: dict[str, Any] = {}
    if real:
        from rag.embed import load_embedder

        reals = {name: load_embedder(name) for name in DIMS}
    return {name: Projection(name, dim, reals.get(name)) for name, dim in DIMS.items()}


def rss_mb() -> dict[str, float]:
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    # RssFile: pages of memory-mapped index files (and libraries) in memory: shared page cache, reclaimable
    return {
        "rss_mb": out.get("VmRSS", 0.0),
        "peak_rss_mb": out.get("VmHWM", 0.0),
        "rss_anon_mb": out.get("RssAnon", 0.0),
        "rss_file_mb": out.get("RssFile", 0.0),
    }


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _chunks_per_issue(work: Path) -> float:
    """Chunks one generated issue (both editions) makes with the shipped chunker (measured on 6 issues)."""
    from gen_archive import generate

    from rag.chunk import ChunkSettings, chunk
    from rag.clean import clean
    from rag.ingest import read_many
    from rag.settings import Settings

    tmp = work / "calibrate"
    shutil.rmtree(tmp, ignore_errors=True)
    files = generate(tmp, 6, seed=99)
    raws, _ = read_many([f for f in files if not f.name.endswith(".meta.json")])
    s = Settings()
    n = sum(len(chunk(clean(r), ChunkSettings(size=s.chunk_size, overlap=s.chunk_overlap))) for r in raws)
    shutil.rmtree(tmp, ignore_errors=True)
    return n / 6


# ---------------------------------------------------------------- phases (each in its own process)


def phase_build(args: argparse.Namespace) -> dict[str, Any]:
    from gen_archive import generate

    from rag.pipeline import Pipeline

    work = args.work
    per_issue = _chunks_per_issue(work)
    issues = max(1, round(args.size / per_issue))
    archive = work / f"archive-{args.size}"
    t = time.perf_counter()
    if not (archive / "done").exists():
        shutil.rmtree(archive, ignore_errors=True)
        generate(archive, issues, seed=0)
        (archive / "done").write_text(str(issues))
    gen_s = time.perf_counter() - t
    settings = scale_settings(work, args.size, args.backend)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    pipe = Pipeline(settings, scale_embedders(real=False))
    files = sorted(p for p in archive.iterdir() if p.suffix in (".txt", ".md"))
    per_batch = max(1, int(args.batch_chunks / per_issue)) * 2  # files: two editions per issue
    t = time.perf_counter()
    batches = []
    for b in range(0, len(files), per_batch):
        tb = time.perf_counter()
        report = pipe.ingest(files[b : b + per_batch])
        batches.append({"files": len(files[b : b + per_batch]), "seconds": round(time.perf_counter() - tb, 1)})
        print(f"build {args.size}: batch {len(batches)}: {report.chunks} chunks so far", file=sys.stderr, flush=True)
    build_s = time.perf_counter() - t
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    return {
        "size": args.size,
        "issues": issues,
        "newsletters": len(files),
        "chunks": manifest["counts"]["chunks"],
        "sentences": manifest["counts"]["sentences"],
        "segments": [(e["chunks"], e["dense"]) for e in manifest.get("segments", [])],
        "generate_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "build_batches": batches,
        "index_bytes": _du(settings.index_dir),
        "build_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def phase_tile(args: argparse.Namespace) -> dict[str, Any]:
    """The index of `--size` chunks as copies of the `--tile-from` index's segments under new document ids.

    Text, vectors, BM25 counts and HNSW graphs are copied, not rebuilt (a 1M-chunk build of the real BM25 would
    take hours on 2 cores): the search cost per question is that of an archive of this size (as many segments,
    graphs and postings), but its build time is not measured.
    """
    import orjson

    src = scale_settings(args.work, args.tile_from, args.backend).index_dir
    dst = scale_settings(args.work, args.size, args.backend).index_dir
    shutil.rmtree(dst, ignore_errors=True)
    (dst / "segments").mkdir(parents=True)
    (dst / "versions").mkdir()
    top = json.loads((src / "manifest.json").read_text())
    copies = max(1, round(args.size / top["counts"]["chunks"]))
    t = time.perf_counter()
    entries, documents = [], {}
    for r in range(copies):
        suffix = f"~{r}" if r else ""
        for e in top["segments"]:
            name = f"s{r:03d}{e['name'][4:]}"
            out = dst / "segments" / name
            shutil.copytree(src / "segments" / e["name"], out)
            for file, keys in (("documents.jsonl", ("doc_id",)), ("chunks.jsonl", ("doc_id", "chunk_id"))):
                rows = [orjson.loads(line) for line in (out / file).read_bytes().splitlines()]
                for row in rows:
                    for k in keys:
                        row[k] = row[k] + suffix if k == "doc_id" else row["doc_id"] + "#" + row[k].rsplit("#", 1)[1]
                    if file == "documents.jsonl":
                        meta = row["meta"]
                        meta["issue"] = f"{meta['issue']}{suffix}"
                        meta["edition_of"] = meta["edition_of"] and meta["edition_of"] + suffix
                        documents[row["doc_id"]] = row["content_hash"]
                (out / file).write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
            rows = [orjson.loads(line) for line in (out / "sentences.jsonl").read_bytes().splitlines()]
            (out / "sentences.jsonl").write_bytes(
                b"".join(orjson.dumps({**row, "doc_id": row["doc_id"] + suffix}) + b"\n" for row in rows)
            )
            if (out / "table.json").exists():  # the columnar tables (rag.tables) name the documents too
                names = json.loads((out / "table.json").read_text("utf-8"))
                names["doc_ids"] = [d + suffix for d in names["doc_ids"]]
                names["ids"] = [i.split("#")[0] + suffix + "#" + i.rsplit("#", 1)[1] for i in names["ids"]]
                (out / "table.json").write_text(json.dumps(names, ensure_ascii=False), "utf-8")
            meta = json.loads((out / "segment.json").read_text())
            (out / "segment.json").write_text(json.dumps({**meta, "name": name}))
            entries.append({**e, "name": name, "deleted": [d + suffix for d in e["deleted"]]})
    version = "v000001-tiled000"
    data = {**top, "segments": entries, "documents": documents, "version": version}
    data["counts"] = {
        k: v * copies if k in ("chunks", "sentences", "documents") else v for k, v in top["counts"].items()
    }
    data["counts"]["segments"] = len(entries)
    (dst / "versions" / version).mkdir()
    (dst / "versions" / version / "manifest.json").write_text(json.dumps(data))
    (dst / "manifest.json").write_text(json.dumps(data))
    return {
        "size": args.size,
        "tiled_from": args.tile_from,
        "copies": copies,
        "chunks": data["counts"]["chunks"],
        "sentences": data["counts"]["sentences"],
        "segments": [(e["chunks"], e["dense"]) for e in entries],
        "tile_s": round(time.perf_counter() - t, 1),
        "index_bytes": _du(dst),
    }


def scale_questions(limit: int) -> list[str]:
    from rag.qa_eval import load_dataset

    qs = [q.question for q in load_dataset(ROOT / "eval" / "datasets" / "mmsp-dev").questions]
    return qs[:limit] if limit else qs


def _pct(ms: list[float], p: float) -> float:
    from rag.metrics import percentile

    return round(percentile(ms, p), 1) if ms else float("nan")


def phase_serve(args: argparse.Namespace) -> dict[str, Any]:
    from rag.pipeline import Pipeline
    from rag.retrieve import search_info

    settings = scale_settings(args.work, args.size, args.backend)
    embedders = scale_embedders(real=args.real_cost)
    t = time.perf_counter()
    pipe = Pipeline(settings, embedders)
    index = pipe.index()
    open_s = time.perf_counter() - t
    rss_open = rss_mb()
    t = time.perf_counter()
    pipe.warm_up()
    questions = scale_questions(args.limit)
    for q in questions[:5]:
        pipe.ask(q)
    warm_s = time.perf_counter() - t
    ms = []
    for q in questions:
        t = time.perf_counter()
        pipe.ask(q)
        ms.append((time.perf_counter() - t) * 1000)
    out: dict[str, Any] = {
        "size": args.size,
        "chunks": int(index.live.sum()) if index.live is not None else len(index.chunks),
        "dense": search_info(index),
        "open_s": round(open_s, 2),
        "open_rss_mb": rss_open["rss_mb"],
        "open_rss_anon_mb": rss_open["rss_anon_mb"],
        "warm_up_s": round(warm_s, 1),
        "asks": len(ms),
        "ask_p50_ms": _pct(ms, 50),
        "ask_p95_ms": _pct(ms, 95),
        **rss_mb(),
    }
    if args.add:
        out["add"] = _add_while_asking(args, pipe, questions)
        out.update({f"after_add_{k}": v for k, v in rss_mb().items()})
    return out


def _add_while_asking(args: argparse.Namespace, pipe: Any, questions: list[str]) -> dict[str, Any]:
    """Ask in a loop; a second process ingests one new issue (2 newsletters) meanwhile."""
    from gen_archive import generate

    new = args.work / f"add-{args.size}"
    shutil.rmtree(new, ignore_errors=True)
    tmp = args.work / f"add-{args.size}-gen"
    shutil.rmtree(tmp, ignore_errors=True)
    new.mkdir(parents=True)
    stem = f"added-newsletter-{int(time.time())}"  # a new issue (not an update of an archived one), every run
    for f in generate(tmp, 1, seed=4242):
        target = new / f.name.replace("synthetic-newsletter-issue-100", stem)
        target.write_text(f.read_text("utf-8").replace("synthetic-newsletter-issue-100", stem))
    shutil.rmtree(tmp, ignore_errors=True)
    idle = []
    for q in questions[:60]:  # idle, just before
        t = time.perf_counter()
        pipe.ask(q)
        idle.append((time.perf_counter() - t) * 1000)
    cmd = [sys.executable, __file__, "--phase", "add", "--size", str(args.size), "--work", str(args.work)]
    cmd += ["--backend", args.backend] + ([] if args.real_cost else ["--no-real-cost"])
    cmd += [] if args.writer_nice is None else ["--writer-nice", str(args.writer_nice)]
    cmd += ["--warm-writer"] if args.warm_writer else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    asks: list[tuple[float, float]] = []  # (start, ms)
    done = threading.Event()
    result: dict[str, Any] = {}

    def wait() -> None:
        stdout, _ = proc.communicate()
        result.update(json.loads(stdout.strip().splitlines()[-1]))
        done.set()

    threading.Thread(target=wait, daemon=True).start()
    i = 0
    while not done.is_set() or len([a for a in asks if a[0] > result.get("ingest_end", 1e18)]) < 20:
        q = questions[i % len(questions)]
        i += 1
        start = time.time()
        t = time.perf_counter()
        pipe.ask(q)
        asks.append((start, (time.perf_counter() - t) * 1000))
    during = [ms for s, ms in asks if result["ingest_start"] <= s <= result["ingest_end"]]
    after = [ms for s, ms in asks if s > result["ingest_end"]]
    seen = stem in pipe.index().documents
    return {
        **result,
        "idle_asks": len(idle),
        "idle_p50_ms": _pct(idle, 50),
        "idle_p95_ms": _pct(idle, 95),
        "during_asks": len(during),
        "during_p50_ms": _pct(during, 50),
        "during_p95_ms": _pct(during, 95),
        "during_max_ms": round(max(during), 1) if during else None,
        "ratio_p95": round(_pct(during, 95) / _pct(idle, 95), 2) if during else None,
        "first_ask_after_ms": round(after[0], 1) if after else None,
        "after_p95_ms": _pct(after, 95),
        "reader_sees_new_issue": seen,
    }


def _stages(marks: list[tuple[str, float]], start: float, end: float) -> dict[str, float]:
    """Wall seconds per stage from the ingest's progress calls: a stage runs from the previous stage's last
    step to its own last one ("clean" includes reading the files, "chunk" opening the index), and
    "write" (segment, swap, merge) from the last step to the end."""
    last: dict[str, float] = {}
    for stage, when in marks:
        last[stage] = when
    out: dict[str, float] = {}
    prev = start
    for stage, when in sorted(last.items(), key=lambda kv: kv[1]):
        out[stage] = round(when - prev, 2)
        prev = when
    out["write"] = round(end - prev, 2)
    return out


def phase_add(args: argparse.Namespace) -> dict[str, Any]:
    from rag.pipeline import Pipeline

    settings = scale_settings(args.work, args.size, args.backend)
    if args.writer_nice is not None:
        settings = settings.replace(writer_nice=args.writer_nice)
    pipe = Pipeline(settings, scale_embedders(real=args.real_cost))
    for emb in pipe.embedders.values():  # models loaded before the timed ingest, and not counted in it
        emb.encode_documents(["warm up"])
        emb.real_seconds = 0.0
    pipe.answer_settings()
    if args.warm_writer:  # a long-lived writer (the web app's admin panel): index open, word lists and jieba loaded
        pipe.warm_up()
        import langchain_text_splitters  # noqa: F401  (the chunker's splitter, imported at its first use)
    files = sorted(p for p in (args.work / f"add-{args.size}").iterdir() if p.suffix in (".txt", ".md"))
    marks: list[tuple[str, float]] = []  # (stage, when its latest step finished)

    def progress(stage: str, done: int, total: int) -> None:
        marks.append((stage, time.perf_counter()))

    start = time.time()
    t = time.perf_counter()
    report = pipe.ingest(files, progress)
    seconds = time.perf_counter() - t
    embed_s = sum(getattr(e, "real_seconds", 0.0) for e in pipe.embedders.values())
    end = time.time()
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    return {
        "ingest_start": start,
        "ingest_end": end,
        "add_s": round(seconds, 2),
        "real_encoding_s": round(embed_s, 2),  # of add_s: the real models encoding the new texts
        "index_s": round(seconds - embed_s, 2),  # the rest: clean, chunk, BM25, segment, swap, merge
        "stages_s": _stages(marks, t, t + seconds),  # wall seconds per ingest stage (real encoding included)
        "added": list(report.added),
        "embedded_chunks": report.embedded_chunks,
        "segments_after": len(manifest.get("segments", [])),
        "real_encoders": args.real_cost,
        "writer_nice": getattr(settings, "writer_nice", None),  # levels below the caller (rag/priority.py)
        "warm_writer": args.warm_writer,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backend", default="faiss", help="index backend (Settings.index_backend)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"), help="archives and indexes")
    parser.add_argument("--out", type=Path, default=ROOT / "eval" / "out" / "bench-scale.json")
    parser.add_argument("--add-at", default="100000", help="sizes at which one newsletter is added while asking")
    parser.add_argument("--batch-chunks", type=int, default=100_000, help="chunks per ingest (one segment each)")
    parser.add_argument("--limit", type=int, default=0, help="questions per ask run (0: all of mmsp-dev)")
    parser.add_argument("--no-real-cost", dest="real_cost", action="store_false")
    parser.add_argument(
        "--writer-nice", type=int, default=None, help="the adding writer's Settings.writer_nice (default: its default)"
    )
    parser.add_argument(
        "--tile-from", type=int, default=0, help="build sizes above this one as copies of its index (1M: 100000)"
    )
    parser.add_argument(
        "--warm-writer",
        action="store_true",
        help="the adding writer opens the index and loads its word lists before the timed ingest (a long-lived "
        "writer such as the web app's) instead of paying them in it (a fresh `newsletter-qa ingest`)",
    )
    parser.add_argument("--phase", choices=("build", "serve", "add", "tile"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--add", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if args.phase:
        phase = {"build": phase_build, "serve": phase_serve, "add": phase_add, "tile": phase_tile}[args.phase]
        print(json.dumps(phase(args)), flush=True)
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    add_at = {int(x) for x in args.add_at.split(",") if x}
    for size in (int(x) for x in args.sizes.split(",")):
        row: dict[str, Any] = {"backend": args.backend}
        tiled = bool(args.tile_from) and size > args.tile_from
        for phase in ("tile" if tiled else "build", "serve"):
            cmd = [sys.executable, __file__, "--phase", phase, "--size", str(size), "--work", str(args.work)]
            cmd += ["--tile-from", str(args.tile_from)]
            cmd += [] if args.writer_nice is None else ["--writer-nice", str(args.writer_nice)]
            cmd += ["--warm-writer"] if args.warm_writer else []
            cmd += ["--backend", args.backend, "--limit", str(args.limit), "--batch-chunks", str(args.batch_chunks)]
            cmd += ([] if args.real_cost else ["--no-real-cost"]) + (
                ["--add"] if phase == "serve" and size in add_at else []
            )
            t = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if proc.returncode:
                row[f"{phase}_error"] = f"exit {proc.returncode}"
                break
            row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            row[f"{phase}_process_s"] = round(time.perf_counter() - t, 1)
        row["load_average"] = round(os.getloadavg()[0], 2)
        results.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"dense": "random projections (see docstring)", "results": results}, indent=1))
    print(json.dumps({"results": results}, indent=1))
    return 0 if all(not any(k.endswith("_error") for k in r) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
