"""How close e5 sentence vectors pooled from their passage's token states come to encoding each sentence alone.

Texts are cut as the index cuts them (chunker and sentence splitter of the shipped settings): the sample
corpus's newsletters and, with `--xquad DIR`, the first `--articles` articles of XQuAD's dev split (en + zh),
each paragraph a document. Every passage is "embedded now", so a sentence is pooled when one of its passages
holds it whole (rag/pooling.py) and otherwise counted as a fallback. Prints, per corpus: sentences, pooled
share, the cosine of pooled vs encoded vectors (mean, 5th percentile, min), and the CPU seconds e5 and USE
spend on the passages (without and with their token states) and on the sentences alone (one thread each).

Usage: .venv/bin/python eval/pooled_agreement.py [--xquad ../shared/data/xquad] [--articles 6] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.settings import Settings


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def corpora(xquad: Path | None, articles: int) -> dict[str, list[Any]]:
    """Corpus name → its documents (rag.types.Document)."""
    from rag.clean import clean
    from rag.ingest import discover, read_many

    out = {"sample": [clean(r) for r in read_many(discover([Settings().corpus]))[0]]}
    if xquad:
        from rag import xquad as xq

        docs = xq.paragraph_documents(xq.load(xquad, "dev", limit=articles))
        for lang in ("en", "zh"):
            out[f"xquad dev {lang}"] = [d for d in docs if d.language == lang]
    return out


def measure(docs: list[Any], e5: Any, use: Any) -> dict[str, Any]:
    from rag import pooling
    from rag.chunk import ChunkSettings, chunk, split_sentences

    s = Settings()
    chunks = [c for d in docs for c in chunk(d, ChunkSettings(s.chunk_size, s.chunk_overlap))]
    text = {d.doc_id: d.text for d in docs}
    sentences = [(d.doc_id, a, b) for d in docs for a, b in split_sentences(d.text)]
    plan = pooling.plan(chunks, [None] * len(chunks), sentences, [None] * len(sentences), e5.token_spans)
    passages = [c.text for c in chunks]
    alone = [text[d][a:b] for d, a, b in sentences]
    cp = _cpu()
    e5.encode(passages, workers=1)
    c0 = _cpu()
    _, states = e5.encode_states(passages, workers=1)
    c1 = _cpu()
    encoded = e5.encode(alone, workers=1)
    c2 = _cpu()
    use.encode_documents(passages)
    c3 = _cpu()
    use.encode_documents(alone)
    c4 = _cpu()
    row = {p: i for i, p in enumerate(passages)}
    cos = np.array([float(pooling.pool(states[row[p.passage]], p.rows) @ encoded[i]) for i, p in plan.items()])
    return {
        "documents": len(docs),
        "passages": len(passages),
        "sentences": len(sentences),
        "pooled": len(plan),
        "cos_mean": round(float(cos.mean()), 4) if len(cos) else None,
        "cos_p5": round(float(np.percentile(cos, 5)), 4) if len(cos) else None,
        "cos_min": round(float(cos.min()), 4) if len(cos) else None,
        "e5_cpu_s_passages": round(c0 - cp, 2),
        "e5_cpu_s_passages_with_states": round(c1 - c0, 2),
        "e5_cpu_s_sentences_alone": round(c2 - c1, 2),
        "use_cpu_s_passages": round(c3 - c2, 2),
        "use_cpu_s_sentences": round(c4 - c3, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xquad", type=Path, help="folder with xquad.en.json and xquad.zh.json")
    parser.add_argument("--articles", type=int, default=6, help="XQuAD dev articles to take (default 6)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from rag.e5fast import FastE5
    from rag.embed import UseEmbedder

    e5, use = FastE5(), UseEmbedder()
    e5.encode(["warm up"]), use.encode_documents(["warm up"])
    rows = {name: measure(docs, e5, use) for name, docs in corpora(args.xquad, args.articles).items()}
    rows["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    for name, r in rows.items():
        print(f"{name}: {r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
