"""Readers against a writer: 1 writer process and 2 reader processes on one index, for a bounded time.

The writer keeps adding, updating and removing newsletters (each write a new version); the readers keep
opening the index and check that what they opened is one version, whole: every file agrees with the
manifest, every chunk with its document, every vector with its chunk, and the generation number the writer
put into the text is the same in the documents, the chunks and the vectors. Local files only, no network.

Usage: .venv/bin/python eval/stress_index.py [--seconds 60] [--json] (tests/test_concurrency.py runs it for
$RAG_STRESS_SECONDS, 20 s by default). Prints opens, swaps, mixed versions, failed opens and failed writes.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PARAGRAPH = (
    "Generation {g}: the seminar on migration and mobility number {g} was held in Hangzhou, and {n} experts "
    "discussed border management, visas and the return of irregular migrants. "
)
_GEN = re.compile(r"Generation (\d+):")


def _settings(root: Path, corpus: Path):  # type: ignore[no-untyped-def]
    from rag.settings import Settings

    # The writer at the readers' priority: this checks what readers see while versions are swapped, and two readers
    # opening in a loop would leave a lowered writer (Settings.writer_nice) too little CPU to swap in the time.
    return Settings(corpus=corpus, index_root=root, embedders=("hash",), lexical=True, writer_nice=0)


def _write_generation(corpus: Path, g: int) -> None:
    """Generation g of the corpus: one newsletter that changes every time, one that comes and goes."""
    body = "\n\n".join(PARAGRAPH.format(g=g, n=n) for n in range(3 + g % 4))
    (corpus / "changing.txt").write_text(f"NEWS OF GENERATION {g}\n\n{body}\n", "utf-8")
    extra = corpus / "extra.txt"
    if g % 3 == 0:
        extra.write_text(f"EXTRA\n\n{PARAGRAPH.format(g=g, n=99)}\n", "utf-8")
    else:
        extra.unlink(missing_ok=True)


def _warm_up() -> None:
    """Imports and dictionaries (jieba) loaded before the clock starts, in every process."""
    from rag.lexical import LexicalIndex

    LexicalIndex.build(["warm up 预热", "warm"], ["zh", "en"])


def writer(root: str, corpus: str, seconds: float, barrier: Any, out: Any) -> None:
    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline

    settings = _settings(Path(root), Path(corpus))
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _warm_up()
    barrier.wait()
    deadline = time.time() + seconds
    swaps = failed = g = 0
    errors: list[str] = []
    while time.time() < deadline:
        g += 1
        _write_generation(Path(corpus), g)
        try:
            report = pipe.ingest([Path(corpus)], replace_all=True)  # removals included (extra.txt comes and goes)
            swaps += int(report.written)
        except Exception:
            failed += 1
            errors.append(traceback.format_exc(limit=3)[-600:])
    out.put({"role": "writer", "swaps": swaps, "failed_writes": failed, "generations": g, "errors": errors[:5]})


def check(index: Any) -> str:
    """'' when `index` is one whole version; otherwise what is mixed."""
    from rag.embed import HashEmbedder

    m = index.manifest
    if set(m.documents) != set(index.documents):
        return f"manifest documents {sorted(m.documents)} != documents.jsonl {sorted(index.documents)}"
    if any(m.documents[d] != doc.content_hash for d, doc in index.documents.items()):
        return "content hash of a document differs from the manifest"
    # Rows of documents tombstoned in their segment (deleted or replaced since) are not part of the version.
    live = range(len(index.chunks)) if index.live is None else [int(i) for i in index.live.nonzero()[0]]
    n_sentences = len(index.sentences) if index.sentence_live is None else int(index.sentence_live.sum())
    if m.counts.get("chunks") != len(live) or m.counts.get("sentences") != n_sentences:
        return f"counts {m.counts} != {len(live)} chunks, {n_sentences} sentences"
    for i in live:
        c = index.chunks[i]
        if index.documents[c.doc_id].text[c.start : c.end] != c.text:
            return f"chunk {c.chunk_id} does not match its document"
    gens = {int(x) for d in index.documents.values() if d.doc_id == "changing" for x in _GEN.findall(d.text)}
    rows = [i for i in live if index.chunks[i].doc_id == "changing"]
    chunk_gens = {int(x) for i in rows for x in _GEN.findall(index.chunks[i].text)}
    if len(gens) != 1 or not chunk_gens <= gens:
        return f"generations: documents {sorted(gens)}, chunks {sorted(chunk_gens)}"
    expect = HashEmbedder().encode_documents([index.chunks[i].text for i in rows])
    if rows and not (abs(index.vectors["hash"][rows] - expect).max() < 1e-5):
        return "vectors are not the vectors of these chunks"
    if index.lexical is not None and (len(index.lexical) != len(index.chunks)):
        return f"lexical index of {len(index.lexical)} passages for {len(index.chunks)} chunks"
    if index.sentence_lexical is not None and len(index.sentence_lexical) != len(index.sentences):
        return "sentence lexical index does not match the sentences"
    return ""


def reader(root: str, corpus: str, seconds: float, barrier: Any, out: Any, via_pipeline: bool) -> None:
    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline
    from rag.store import open_index

    settings = _settings(Path(root), Path(corpus))
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _warm_up()
    open_index(settings.index_dir, ("hash",), True)
    barrier.wait()
    deadline = time.time() + seconds
    opens = mixed = failed = 0
    versions: set[str] = set()
    errors: list[str] = []
    while time.time() < deadline:
        try:
            # The app's way (reopen when the manifest changed) or a bare open, every time.
            index = pipe.index() if via_pipeline else open_index(settings.index_dir, ("hash",), True)
        except Exception:
            failed += 1
            errors.append(traceback.format_exc(limit=3)[-600:])
            continue
        opens += 1
        versions.add(index.version)
        problem = check(index)
        if problem:
            mixed += 1
            errors.append(problem)
        if via_pipeline:
            pipe._index = None  # open again next time, even when nothing changed: count real opens
    out.put(
        {
            "role": "reader",
            "opens": opens,
            "mixed": mixed,
            "failed_opens": failed,
            "versions_seen": len(versions),
            "errors": errors[:5],
        }
    )


def run(seconds: float) -> dict[str, Any]:
    """Build a small index, then race 1 writer and 2 readers for `seconds`; the summed counts."""
    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline
    from rag.store import clean_stale, write_lock

    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="stress-index-") as tmp:
        root, corpus = Path(tmp) / "index", Path(tmp) / "corpus"
        corpus.mkdir()
        _write_generation(corpus, 0)
        Pipeline(_settings(root, corpus), {"hash": HashEmbedder()}).ingest([corpus])
        queue, barrier = ctx.Queue(), ctx.Barrier(3)  # all three start together, after their imports
        procs = [ctx.Process(target=writer, args=(str(root), str(corpus), seconds, barrier, queue))]
        procs += [
            ctx.Process(target=reader, args=(str(root), str(corpus), seconds, barrier, queue, via))
            for via in (False, True)
        ]
        for p in procs:
            p.start()
        results = [queue.get(timeout=seconds + 300) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        versions = root / "default" / "versions"
        at_end = len(list(versions.iterdir()))  # the current one, and maybe one a reader held at the last write
        with write_lock(root / "default"):  # what the next write does first
            clean_stale(root / "default")
        leftovers = sorted(p.name for p in versions.iterdir())
    readers = [r for r in results if r["role"] == "reader"]
    w = next(r for r in results if r["role"] == "writer")
    return {
        "seconds": seconds,
        "opens": sum(r["opens"] for r in readers),
        "swaps": w["swaps"],
        "mixed": sum(r["mixed"] for r in readers),
        "failed_opens": sum(r["failed_opens"] for r in readers),
        "failed_writes": w["failed_writes"],
        "versions_seen": [r["versions_seen"] for r in readers],
        "versions_at_end": at_end,
        "versions_left": len(leftovers),
        "errors": [e for r in results for e in r["errors"]][:10],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    result = run(args.seconds)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['seconds']:.0f} s: {result['opens']} opens, {result['swaps']} swaps, {result['mixed']} mixed, "
            f"{result['failed_opens']} failed opens, {result['failed_writes']} failed writes, "
            f"{result['versions_left']} version folder(s) left"
        )
        for e in result["errors"]:
            print(e, file=sys.stderr)
    return 0 if result["mixed"] == result["failed_opens"] == result["failed_writes"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
