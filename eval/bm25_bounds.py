"""How much of a segment exact BM25 top-k pruning could skip, on a bench-scale index (issue 11).

For the mmsp-dev questions (every `--step`-th) against one segment's BM25 fields, per target language as
`rag.lexical.SegmentedLexical` scores it (a same-language target: the native field; a cross-language one: native
and translated fields, averaged), with θ the k-th best score of the segment:

- **block-max**: rows cut in blocks of B; a block's bound sums, per concept, idf · BM25 of (the sum of the concept's
  terms' largest count in the block) at the block's shortest passage. Reported: the share of blocks whose bound
  reaches θ (they must be scored).
- **MaxScore**: concepts by their upper bound, smallest first; those whose bounds add up to less than θ cannot
  lift a row on their own. Reported: the share of rows in the union of the other concepts' postings (they must be
  scored, and looked up in the rest), with each concept's exact largest contribution and with a bound from its
  largest count and the field's shortest passage.

    python eval/bm25_bounds.py --size 100000 --k 20 200

k = 20 on one 100k segment is what k = 200 (retrieval's BM25 depth) asks of each of the ten copies at 1M.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "eval"))


def _concept_rows(f, query, s):  # type: ignore[no-untyped-def]
    """Per concept: (exact contributions, rows, largest summed count), and the field's idf, avg, self-score."""
    postings = f.postings(query)
    n = f.tf.shape[0]
    df = np.zeros(len(query), np.int64)
    for qi, r, _v in postings:
        df[qi] = len(r)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    avg = float(np.sum(f.length)) / n
    length = np.asarray(f.length, np.float64)
    out = []
    for qi, r, v in postings:
        v64 = v.astype(np.float64)
        exact = idf[qi] * v64 * (s.k1 + 1) / (v64 + s.k1 * (1 - s.b + s.b * length[r] / avg))
        out.append((qi, exact, r, v64.max()))
    return out, idf, avg, float(idf.sum())


def _block_bound(f, query, idf, avg, s, block):  # type: ignore[no-untyped-def]
    n = f.tf.shape[0]
    nb = (n + block - 1) // block
    padded = np.full(nb * block, np.inf)
    padded[:n] = np.asarray(f.length, np.float64)
    shortest = padded.reshape(nb, block).min(1)
    indptr, indices, data = f._csc
    bound = np.zeros(nb)
    for qi, concept in enumerate(query):
        top = np.zeros(nb)
        for t, w in concept:
            i = f.vocab.get(t)
            if i is None:
                continue
            lo, hi = int(indptr[i]), int(indptr[i + 1])
            m = np.zeros(nb)
            np.maximum.at(m, np.asarray(indices[lo:hi]) // block, np.asarray(data[lo:hi], np.float64) * w)
            top += m
        norm = s.k1 * (1 - s.b + s.b * shortest / avg)
        bound += np.where(top > 0, idf[qi] * top * (s.k1 + 1) / (top + norm), 0.0)
    return bound


def main(argv: list[str] | None = None) -> int:
    import bench_scale as b

    from rag.lang import base, detect
    from rag.lexical import LexicalIndex, SegmentedLexical, concepts

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-scale"))
    parser.add_argument("--step", type=int, default=6, help="every n-th question")
    parser.add_argument("--k", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--blocks", type=int, nargs="+", default=[64, 256, 1024])
    args = parser.parse_args(argv)
    folder = args.work / "index" / f"n{args.size}"
    entries = json.loads((folder / "manifest.json").read_text())["segments"]
    name = max(entries, key=lambda e: e["chunks"])["name"]  # the largest segment
    lex = LexicalIndex.load(folder / "segments" / name / "lexical")
    s = lex.settings
    seg = SegmentedLexical([(0, lex, None)])
    rows_out: list[dict] = []
    for q in b.scale_questions(0)[:: args.step]:
        source = base(detect(q))
        for target in ("en", "zh"):
            fields = [(seg._field_parts("native", target)[0][0], concepts(q, target, s))]
            if target != source:
                fields.append((seg._field_parts("translated", target)[0][0], concepts(q, source, s)))
            weight = 1.0 if target == source else 0.5  # (native + translated) / 2 across languages
            rows = seg._field_parts("native", target)[0][1]
            full = seg.scores(q, source)[rows]
            per_concept, blocks = [], {bl: 0.0 for bl in args.blocks}
            for f, query in fields:
                if not query:
                    continue
                found, idf, avg, self_score = _concept_rows(f, query, s)
                shortest = float(np.min(f.length))
                for qi, exact, r, vmax in found:
                    loose = idf[qi] * vmax * (s.k1 + 1) / (vmax + s.k1 * (1 - s.b + s.b * shortest / avg))
                    per_concept.append((exact.max() * weight / self_score, loose * weight / self_score, r))
                for bl in args.blocks:
                    blocks[bl] = blocks[bl] + _block_bound(f, query, idf, avg, s, bl) * weight / self_score
            postings = sum(len(r) for *_, r in per_concept) / len(rows)
            for k in args.k:
                theta = float(np.sort(full)[::-1][k - 1]) if len(full) >= k else 0.0
                row: dict = {"same": target == source, "k": k, "postings_per_row": postings}
                for bl in args.blocks:
                    row[f"blocks_{bl}"] = float(np.mean(blocks[bl] * (1 + 1e-5) >= theta))
                for which, label in ((0, "maxscore_exact"), (1, "maxscore_bound")):
                    ordered = sorted(per_concept, key=lambda c, w=which: c[w])
                    cum = np.cumsum([c[which] for c in ordered])
                    needed = [c[2] for c, total in zip(ordered, cum, strict=True) if total >= theta]
                    row[label] = len(np.unique(np.concatenate(needed))) / len(rows) if needed else 0.0
                rows_out.append(row)
    for k in args.k:
        for same in (True, False):
            sel = [r for r in rows_out if r["k"] == k and r["same"] == same]
            cells = ", ".join(
                f"{key} {np.mean([r[key] for r in sel]):.3f} (p90 {np.percentile([r[key] for r in sel], 90):.3f})"
                for key in [*(f"blocks_{bl}" for bl in args.blocks), "maxscore_exact", "maxscore_bound"]
            )
            what = "same-language" if same else "cross-language"
            postings = np.mean([r["postings_per_row"] for r in sel])
            print(f"k={k} {what} ({len(sel)} question-targets, postings/row {postings:.2f}): {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
