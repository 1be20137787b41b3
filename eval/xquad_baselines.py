"""Orientation baselines on the whole of XQuAD (48 articles, 240 paragraphs a language), top-1 paragraph.

Whole paragraphs, no chunking, no fusion: USE and e5 cosines and their sum for Chinese questions against English
paragraphs; BM25 (rag.lexical) within one language; BM25 after word-by-word CC-CEDICT translation (every gloss).
Usage: .venv/bin/python eval/xquad_baselines.py [--data ../shared/data/xquad]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import cedict, lexical, xquad
from rag.embed import E5Embedder, UseEmbedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad")
    args = ap.parse_args()
    splits = [xquad.load(args.data, s) for s in ("dev", "test")]
    paragraphs = {lang: [p for s in splits for p in s.paragraphs if p.language == lang] for lang in ("en", "zh")}
    questions = {lang: [q for s in splits for q in s.questions if q.language == lang] for lang in ("en", "zh")}
    row = {lang: {p.pid: i for i, p in enumerate(ps)} for lang, ps in paragraphs.items()}

    def top1(scores: np.ndarray, qs: list, lang: str) -> float:
        gold = np.array([row[lang][q.pid] for q in qs])
        return float((scores.argmax(axis=1) == gold).mean())

    zh_q = questions["zh"]
    dense = {}
    for name, emb in (("use", UseEmbedder()), ("e5", E5Embedder())):
        passages = emb.encode_documents([p.text for p in paragraphs["en"]])
        dense[name] = emb.encode_queries([q.text for q in zh_q]) @ passages.T
        print(f"{name:5} zh->en top-1 {top1(dense[name], zh_q, 'en'):.3f}", flush=True)
    print(f"use+e5 zh->en top-1 {top1(dense['use'] + dense['e5'], zh_q, 'en'):.3f}")

    for lang in ("en", "zh"):
        index = lexical.LexicalIndex.build([p.text for p in paragraphs[lang]], [lang] * len(paragraphs[lang]))
        hits = [index.search(q.text, k=1, language=lang) for q in questions[lang]]
        ok = [bool(h) and h[0][0] == row[lang][q.pid] for h, q in zip(hits, questions[lang], strict=True)]
        print(f"bm25 {lang}->{lang} top-1 {np.mean(ok):.3f}")

    plain = lexical.Settings(doc_translate=False)
    index = lexical.LexicalIndex.build([p.text for p in paragraphs["en"]], ["en"] * len(paragraphs["en"]), plain)
    ok = []
    for q in zh_q:
        words = [w for w in lexical._jieba().cut(q.text) if w.strip()]
        translated = " ".join(g for w in words for g in cedict.zh_to_en(w))
        hits = index.search(translated, k=1, language="en")
        ok.append(bool(hits) and hits[0][0] == row["en"][q.pid])
    print(f"bm25 word-by-word dictionary translation zh->en top-1 {np.mean(ok):.3f}")


if __name__ == "__main__":
    main()
