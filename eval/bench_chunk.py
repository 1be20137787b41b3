"""Chunking time of one large newsletter: 1, 2, 4, 8, 16 MB (and more with --sizes), to show it is linear.

The document is the sample issue (English and Chinese editions, cleaned) repeated to the size asked, without
sections (the worst case: one span). Times `chunk` + `split_sentences` (what an ingest does per document)
and the sentence map an opened index builds (`segments.map_chunk_sentences`), after a warm-up. Reports
wall-clock and CPU time (CPU time is what the code costs on a shared machine).
Usage: .venv/bin/python eval/bench_chunk.py [--sizes 1,2,4,8,16] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.chunk import chunk, split_sentences
from rag.clean import clean
from rag.ingest import read
from rag.segments import map_chunk_sentences
from rag.settings import PROJECT_ROOT
from rag.types import Document


def big_document(megabytes: float) -> Document:
    """The sample editions repeated to `megabytes` of UTF-8 text, as one document without sections."""
    sample = PROJECT_ROOT / "data" / "newsletters"
    en = clean(read(sample / "mmsp-ii-newsletter-issue-11.txt", sample))
    zh = clean(read(sample / "mmsp-ii-newsletter-issue-11.zh.md", sample))
    unit = en.text + "\n\n" + zh.text + "\n\n"
    reps = int(megabytes * 2**20 / len(unit.encode("utf-8"))) + 1
    return dataclasses.replace(en, doc_id="big", text=(unit * reps).strip(), sections=())


def measure(megabytes: float) -> dict[str, float]:
    doc = big_document(megabytes)
    t, c = time.perf_counter(), time.process_time()
    chunks = chunk(doc)
    spans = split_sentences(doc.text)
    chunk_s, chunk_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    map_chunk_sentences(chunks, [(doc.doc_id, a, b) for a, b in spans])
    map_s = time.perf_counter() - t
    return {
        "mb": megabytes,
        "chars": len(doc.text),
        "chunks": len(chunks),
        "sentences": len(spans),
        "chunk_s": round(chunk_s, 2),
        "chunk_cpu_s": round(chunk_cpu, 2),
        "sentence_map_s": round(map_s, 2),
        "cpu_s_per_mb": round(chunk_cpu / megabytes, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,2,4,8,16", help="megabytes, comma-separated")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    measure(0.05)  # imports and regex compilation out of the way
    rows = [measure(float(x)) for x in args.sizes.split(",")]
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| MB | characters | chunks | sentences | chunk + sentences, wall s | CPU s | CPU s/MB | sentence map s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mb']:g} | {r['chars']:,} | {r['chunks']:,} | {r['sentences']:,} | {r['chunk_s']} | "
            f"{r['chunk_cpu_s']} | {r['cpu_s_per_mb']} | {r['sentence_map_s']} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
