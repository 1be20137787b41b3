"""Per-question search cost as the archive grows: `retrieve.search` on the sample index tiled to N chunks.

The sample index (built with the shipped settings if absent) is repeated until it holds N chunks: documents and
chunks get new ids, dense vectors a little noise (renormalised) so no two tiles are identical, BM25's count
matrices are stacked. Every question of the dev set is then searched (k = 5, all channels, second stage on),
without a filter and with a language filter, timed one at a time after a warm-up search (which builds the
FAISS structures: flat up to `retrieve.FLAT_MAX` chunks, HNSW above; their build time is printed apart).

Usage: .venv/bin/python eval/bench_search.py --sizes 53,10000,100000 [--baseline old_retrieve.py]
`--baseline` times another version of rag/retrieve.py on the same tiled indexes (e.g. `git show
main:rag/retrieve.py > /tmp/old_retrieve.py`).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import lang
from rag.metrics import percentile
from rag.qa_eval import load_dataset
from rag.settings import PROJECT_ROOT, Settings


def tile(index: Any, n: int, seed: int = 0) -> Any:
    """`index` repeated (with noisy vectors) until it holds `n` chunks, or cut to `n`."""
    from scipy import sparse

    from rag.lexical import LexicalIndex, _Field
    from rag.store import Index

    base_n = len(index.chunks)
    reps = max(1, -(-n // base_n))
    rng = np.random.default_rng(seed)
    documents, chunks, sentences, chunk_sentences = {}, [], [], []
    for r in range(reps):
        suffix = f"~{r}" if r else ""
        for d, doc in index.documents.items():  # each tile its own issue, so editions fold only within a tile
            edition = doc.meta.edition_of and doc.meta.edition_of + suffix
            meta = dataclasses.replace(doc.meta, issue=f"{doc.meta.issue}{suffix}", edition_of=edition)
            documents[d + suffix] = dataclasses.replace(doc, doc_id=d + suffix, meta=meta)
        offset = len(sentences)
        sentences += [(d + suffix, a, b) for d, a, b in index.sentences]
        for c, rows in zip(index.chunks, index.chunk_sentences, strict=True):
            chunks.append(dataclasses.replace(c, chunk_id=c.chunk_id + suffix, doc_id=c.doc_id + suffix))
            chunk_sentences.append([offset + s for s in rows])

    def noisy(v: np.ndarray) -> np.ndarray:
        out = np.concatenate([v] + [v + rng.normal(0, 0.02, v.shape).astype(np.float32) for _ in range(reps - 1)])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    vectors = {ch: noisy(v)[:n] for ch, v in index.vectors.items()}
    keep = len(chunks[:n])
    chunks, chunk_sentences = chunks[:keep], chunk_sentences[:keep]
    sentence_vectors = {ch: noisy(v) for ch, v in index.sentence_vectors.items()}
    lex = index.lexical
    if lex is not None:
        languages = (lex.languages * reps)[:keep]

        def stack(fields: dict[str, Any]) -> dict[str, Any]:
            out = {}
            for language, f in fields.items():
                rows = sum(1 for x in languages if x == language)
                tf = sparse.vstack([f.tf] * reps).tocsr()[:rows].tocsc()
                tf.sort_indices()
                out[language] = _Field(f.vocab, tf)
            return out

        lex = LexicalIndex(languages, stack(lex.native), stack(lex.translated), lex.settings)
    return Index(
        index.folder,
        index.manifest,
        documents,
        chunks,
        vectors,
        sentences,
        sentence_vectors,
        lex,
        None,
        {},
        chunk_sentences,
    )


def load_retrieve(path: Path | None) -> Any:
    if path is None:
        from rag import retrieve

        return retrieve
    spec = importlib.util.spec_from_file_location("baseline_retrieve", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_retrieve"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="53,10000,100000")
    parser.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "eval" / "datasets" / "mmsp-dev")
    parser.add_argument("--limit", type=int, default=0, help="questions (0: all)")
    parser.add_argument("--baseline", type=Path, help="another rag/retrieve.py to time the same way")
    args = parser.parse_args(argv)

    from rag.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        pipe = Pipeline(Settings(index_root=Path(tmp) / "index", data_dir=Path(tmp) / "var"))
        base = pipe.index()
        questions = load_dataset(args.dataset).questions
        questions = questions[: args.limit] if args.limit else questions
        prepared = []
        for q in questions:
            language = lang.detect(q.question)
            prepared.append(
                (pipe._query_text(q.question, language), pipe._query_vectors(q.question, language), language)
            )
        fusion = pipe.fusion()
        versions = {"current": load_retrieve(None)}
        if args.baseline:
            versions["baseline"] = load_retrieve(args.baseline)
        results = []
        for n in (int(s) for s in args.sizes.split(",")):
            index = tile(base, n)
            for name, module in versions.items():
                t = time.perf_counter()
                module.search(index, prepared[0][0], prepared[0][1], fusion, module.Filters(), 5, prepared[0][2])
                first = time.perf_counter() - t
                row: dict[str, Any] = {"chunks": len(index.chunks), "version": name, "first_search_s": round(first, 2)}
                if hasattr(module, "search_info"):
                    row["dense"] = module.search_info(index)
                for label, filters in (("all", module.Filters()), ("language", None)):
                    ms = []
                    for text, qv, language in prepared:
                        f = filters if filters is not None else module.Filters(language=lang.base(language))
                        t = time.perf_counter()
                        module.search(index, text, qv, fusion, f, 5, language)
                        ms.append((time.perf_counter() - t) * 1000)
                    row[f"{label}_p50_ms"] = round(percentile(ms, 50), 2)
                    row[f"{label}_p95_ms"] = round(percentile(ms, 95), 2)
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
            del index
    print(json.dumps({"load_average": os.getloadavg()[0], "questions": len(prepared), "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
