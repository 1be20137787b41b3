"""Measure the lexical channel on XQuAD paragraph retrieval (dev split unless --split test), by direction.

Usage: .venv/bin/python eval/lexical_probe.py [--split dev|test] [--set k=v ..] [--grid k=v1,v2 ..] [--naive]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag import lexical

DATA = Path("/work/shared/data/xquad")


def load(lang: str, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """Passages and (question, gold passage row) for one language and split (first 24 articles = dev)."""
    articles = json.loads((DATA / f"xquad.{lang}.json").read_text())["data"]
    articles = articles[:24] if split == "dev" else articles[24:]
    passages, questions = [], []
    for art in articles:
        for par in art["paragraphs"]:
            questions += [(qa["question"], len(passages)) for qa in par["qas"]]
            passages.append(par["context"])
    return passages, questions


def evaluate(index, questions, language, gold_of, k: int = 5) -> dict[str, float]:
    """R@1, R@5 and query latencies (ms)."""
    r1 = r5 = 0
    lat = []
    for q, gold in questions:
        t = time.perf_counter()
        hits = index.search(q, k=k, language=language)
        lat.append((time.perf_counter() - t) * 1000)
        rows = [gold_of(r) for r, _ in hits]
        r1 += bool(rows) and rows[0] == gold
        r5 += gold in rows
    n = len(questions)
    return {
        "R@1": r1 / n,
        "R@5": r5 / n,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
    }


def run(settings: lexical.Settings, split: str, verbose: bool = True) -> dict[str, dict[str, float]]:
    """All six directions for one setting."""
    en_p, en_q = load("en", split)
    zh_p, zh_q = load("zh", split)
    n = len(en_p)
    builds = {}
    t = time.perf_counter()
    idx_en = lexical.LexicalIndex.build(en_p, ["en"] * n, settings)
    builds["en"] = time.perf_counter() - t
    t = time.perf_counter()
    idx_zh = lexical.LexicalIndex.build(zh_p, ["zh"] * n, settings)
    builds["zh"] = time.perf_counter() - t
    t = time.perf_counter()
    idx_mix = lexical.LexicalIndex.build(en_p + zh_p, ["en"] * n + ["zh"] * n, settings)
    builds["mixed"] = time.perf_counter() - t
    same = lambda r: r  # noqa: E731
    folded = lambda r: r % n  # noqa: E731  (both copies of a passage count as correct)
    res = {
        "en->en": evaluate(idx_en, en_q, "en", same),
        "zh->zh": evaluate(idx_zh, zh_q, "zh", same),
        "zh->en": evaluate(idx_en, zh_q, "zh", same),
        "en->zh": evaluate(idx_zh, en_q, "en", same),
        "mixed-en": evaluate(idx_mix, en_q, "en", folded),
        "mixed-zh": evaluate(idx_mix, zh_q, "zh", folded),
    }
    if verbose:
        print(f"{split}: {len(en_q)} questions, {n} passages/language; settings {settings}")
        print(f"{'direction':10} {'R@1':>6} {'R@5':>6} {'p50 ms':>7} {'p95 ms':>7}")
        for name, r in res.items():
            print(f"{name:10} {r['R@1']:6.3f} {r['R@5']:6.3f} {r['p50']:7.2f} {r['p95']:7.2f}")
        print("build s: " + ", ".join(f"{k} {v:.2f}" for k, v in builds.items()))
    return res


def naive(split: str) -> None:
    """Baseline: word-by-word dictionary translation (every gloss, unweighted), then monolingual BM25."""
    from rag import cedict

    en_p, en_q = load("en", split)
    zh_p, zh_q = load("zh", split)
    plain = lexical.Settings(doc_translate=False)
    idx_en = lexical.LexicalIndex.build(en_p, ["en"] * len(en_p), plain)
    idx_zh = lexical.LexicalIndex.build(zh_p, ["zh"] * len(zh_p), plain)
    zh_words = lambda q: [w for w in lexical._jieba().cut(q) if w.strip()]  # noqa: E731
    to_en = [(" ".join(g for w in zh_words(q) for g in cedict.zh_to_en(w)), gold) for q, gold in zh_q]
    to_zh = [(" ".join(h for w in q.split() for h in cedict.en_to_zh(w.strip("?,.'\""))), g) for q, g in en_q]
    for name, idx, qs, lang in (("zh->en", idx_en, to_en, "en"), ("en->zh", idx_zh, to_zh, "zh")):
        r = evaluate(idx, qs, lang, lambda r: r)
        print(f"naive {name}: R@1 {r['R@1']:.3f} R@5 {r['R@5']:.3f}")


def parse_value(text: str):
    """Settings values from the command line."""
    if text in ("True", "False"):
        return text == "True"
    return float(text) if "." in text else int(text)


def main() -> None:
    """Command-line entry."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--split", default="dev", choices=["dev", "test"])
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--grid", nargs="*", default=[], help="key=v1,v2 … one-at-a-time sweeps")
    ap.add_argument("--naive", action="store_true", help="word-by-word translation baseline")
    args = ap.parse_args()
    if args.naive:
        naive(args.split)
        return
    settings = lexical.Settings(**{k: parse_value(v) for k, v in (s.split("=") for s in args.set)})
    lexical.analyze("预热", "zh")  # load jieba and CEDICT outside the timings
    lexical.concepts("warm up 预热", "en", settings)
    if not args.grid:
        run(settings, args.split)
        return
    for spec in args.grid:
        key, values = spec.split("=")
        for v in values.split(","):
            s = replace(settings, **{key: parse_value(v)})
            r = run(s, args.split, verbose=False)
            print(f"{key}={v:6} " + " ".join(f"{d} {r[d]['R@1']:.3f}/{r[d]['R@5']:.3f}" for d in r), flush=True)


if __name__ == "__main__":
    main()
