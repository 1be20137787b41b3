"""Evaluation metrics as pure functions: ranking, answer text, abstention, citations, confidence intervals.

Nouns follow BEIR: `qrels` is `{qid: {doc_id: relevance}}`, `results` is `{qid: {doc_id: score}}`. Nothing
here mutates its arguments. A `relevant` argument is either a set of ids (binary relevance) or a
`{doc_id: grade}` mapping (graded; ids with grade <= 0 are judged non-relevant, as in trec_eval). Ranked lists
should hold unique ids; a repeated id earns credit only at its first position.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import numpy as np

Relevant = Mapping[str, int] | Mapping[str, float] | Collection[str]
MetricFn = Callable[[Sequence[str], Relevant, int], float]

DEFAULT_METRICS = ("R@1", "R@5", "MRR@10", "nDCG@10")

_HAN_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_HAN = re.compile(f"[{_HAN_RANGES}]")
# A token is one Han character, or a run of anything else that is not a space (a Latin word, a number).
_ZH_TOKEN = re.compile(f"[{_HAN_RANGES}]|[^\\s{_HAN_RANGES}]+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_METRIC_NAME = re.compile(r"^\s*([A-Za-z]+)\s*@\s*(\d+)\s*$")
_BOOTSTRAP_CELLS = 1 << 22  # resample indices drawn per batch: ~32 MB at most, whatever the sample size


# --- per-query ranking metrics ------------------------------------------------------------------------------


def _grades(relevant: Relevant) -> dict[str, float]:
    """Map each relevant id to its positive grade (1 for every id of a plain collection)."""
    if isinstance(relevant, str):
        raise TypeError("relevant must be a collection of ids or a {doc_id: grade} mapping, not a str")
    if isinstance(relevant, Mapping):
        return {doc_id: grade for doc_id, grade in relevant.items() if grade > 0}
    return dict.fromkeys(relevant, 1.0)


def _first_hits(ranked: Sequence[str], k: int) -> list[tuple[int, str]]:
    """(1-based rank, id) for the top k, skipping later repeats of an id (they never earn credit twice)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seen: set[str] = set()
    hits: list[tuple[int, str]] = []
    for i, doc_id in enumerate(ranked[:k], start=1):
        if doc_id not in seen:
            seen.add(doc_id)
            hits.append((i, doc_id))
    return hits


def recall_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Fraction of the relevant ids found in the top k (0.0 when nothing is relevant)."""
    grades = _grades(relevant)
    found = sum(doc_id in grades for _, doc_id in _first_hits(ranked, k))
    return found / len(grades) if grades else 0.0


def hit_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """1.0 if any relevant id is in the top k, else 0.0 (success@k; the "R@k" of many XQuAD papers)."""
    grades = _grades(relevant)
    return 1.0 if any(doc_id in grades for _, doc_id in _first_hits(ranked, k)) else 0.0


def precision_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Relevant ids among the top k, divided by k (a short list is not padded in its favour)."""
    grades = _grades(relevant)
    return sum(doc_id in grades for _, doc_id in _first_hits(ranked, k)) / k


def mrr_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Reciprocal rank of the first relevant id within the top k (0.0 when there is none)."""
    grades = _grades(relevant)
    for i, doc_id in _first_hits(ranked, k):
        if doc_id in grades:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Normalised discounted cumulative gain at k, with linear gain and log2 discount (as pytrec_eval/BEIR).

    DCG@k = sum over ranks i <= k of grade(i) / log2(i + 1); IDCG@k is the DCG of the relevant ids sorted by
    grade. Returns 0.0 when nothing is relevant.
    """
    grades = _grades(relevant)
    hits = _first_hits(ranked, k)
    if not grades:
        return 0.0
    dcg = sum(grades.get(doc_id, 0) / math.log2(i + 1) for i, doc_id in hits)
    ideal = sorted(grades.values(), reverse=True)[:k]
    idcg = sum(grade / math.log2(i + 1) for i, grade in enumerate(ideal, start=1))
    return dcg / idcg


def average_precision_at_k(ranked: Sequence[str], relevant: Relevant, k: int) -> float:
    """Average precision at k as in LAReQA / XTREME-R (`mAP@20` there is the mean of this with k=20).

    AP@k = (1 / min(|R|, k)) * sum over ranks i <= k of P@i * rel(i), where R is the relevant set, P@i the
    precision of the top i and rel(i) 1 if the id at rank i is relevant. When |R| <= k (LAReQA: 11 relevant
    answers, k=20) the divisor is |R|, the paper's formula; min(|R|, k) matches the reference code
    (google-research/xtreme `utils_lareqa.average_precision_at_k`) and keeps a perfect top k at 1.0.
    Returns 0.0 when nothing is relevant.
    """
    grades = _grades(relevant)
    found = 0
    total = 0.0
    for i, doc_id in _first_hits(ranked, k):
        if doc_id in grades:
            found += 1
            total += found / i
    return total / min(len(grades), k) if grades else 0.0


_METRIC_FNS: dict[str, MetricFn] = {
    "r": recall_at_k,
    "recall": recall_at_k,
    "hit": hit_at_k,
    "success": hit_at_k,
    "p": precision_at_k,
    "precision": precision_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "map": average_precision_at_k,
    "ap": average_precision_at_k,
}


def parse_metric(name: str) -> tuple[MetricFn, int]:
    """Turn a metric name such as "R@5", "Hit@1", "MRR@10", "nDCG@10" or "mAP@20" into (function, k).

    Names are case-insensitive. "R@k"/"Recall@k" is the fraction of relevant ids retrieved;
    "Hit@k"/"Success@k" is 1 if any is retrieved. They agree whenever a query has one relevant id (XQuAD
    paragraph retrieval within one language); with several relevant ids, ask for "Hit@k" wherever a paper's
    "R@k" means hit rate.
    """
    match = _METRIC_NAME.match(name)
    if match is None or match.group(1).lower() not in _METRIC_FNS:
        raise ValueError(f"unknown metric {name!r}; expected e.g. R@5, Hit@1, P@5, MRR@10, nDCG@10, mAP@20")
    k = int(match.group(2))
    if k < 1:
        raise ValueError(f"metric {name!r}: k must be >= 1")
    return _METRIC_FNS[match.group(1).lower()], k


def rank(results_for_query: Mapping[str, float]) -> list[str]:
    """Doc ids by score descending, ties broken by id ascending, so every run ranks identically."""
    for doc_id, score in results_for_query.items():
        if math.isnan(score):
            raise ValueError(f"score of {doc_id!r} is NaN")
    return sorted(results_for_query, key=lambda doc_id: (-results_for_query[doc_id], doc_id))


# --- corpus-level ranking metrics ---------------------------------------------------------------------------


def _judged_qids(qrels: Mapping[str, Mapping[str, int]], qids: Iterable[str] | None) -> list[str]:
    """The queries to score: the given ones (each must have a relevant doc), else every query with one."""
    if qids is None:
        return sorted(qid for qid, docs in qrels.items() if any(grade > 0 for grade in docs.values()))
    chosen = list(qids)
    missing = [qid for qid in chosen if not any(grade > 0 for grade in qrels.get(qid, {}).values())]
    if missing:
        raise ValueError(f"{len(missing)} qids have no relevant document in qrels, e.g. {missing[:3]}")
    return chosen


def per_query(
    qrels: Mapping[str, Mapping[str, int]],
    results: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    qids: Iterable[str] | None = None,
) -> dict[str, dict[str, float]]:
    """Each metric for each query; a query absent from `results` gets an empty ranking and scores 0.0.

    Args:
        qrels: `{qid: {doc_id: relevance}}`; only queries with a relevance > 0 are scored by default.
        results: `{qid: {doc_id: score}}`, ranked with `rank`; qids not in qrels are ignored.
        metrics: names understood by `parse_metric`, used verbatim as keys of the output.
        qids: score only these queries (e.g. one language direction); each must have a relevant doc.
    """
    parsed = [(name, *parse_metric(name)) for name in metrics]
    table: dict[str, dict[str, float]] = {}
    for qid in _judged_qids(qrels, qids):
        ranked = rank(results.get(qid, {}))
        relevant = qrels[qid]
        table[qid] = {name: fn(ranked, relevant, k) for name, fn, k in parsed}
    return table


def evaluate(
    qrels: Mapping[str, Mapping[str, int]],
    results: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    qids: Iterable[str] | None = None,
) -> dict[str, float]:
    """Mean of each metric over the scored queries (see `per_query`); all NaN when no query is scored."""
    table = per_query(qrels, results, metrics, qids)
    if not table:
        return {name: math.nan for name in metrics}
    return {name: float(np.mean([row[name] for row in table.values()])) for name in metrics}


# --- answer text --------------------------------------------------------------------------------------------


def _strip_punctuation(text: str) -> str:
    """Delete Unicode punctuation and symbols (a superset of SQuAD's `string.punctuation`)."""
    return "".join(ch for ch in text if unicodedata.category(ch)[0] not in "PS")


def answer_tokens(text: str, chinese: bool) -> list[str]:
    """Normalised answer tokens: SQuAD rules for English; single Han characters plus Latin words for Chinese.

    Both: NFKC (full-width letters, digits and punctuation become ASCII), lowercase, punctuation deleted.
    English also drops the articles a/an/the; Chinese does not (MLQA's rule; "A股" keeps its "a").
    """
    text = _strip_punctuation(unicodedata.normalize("NFKC", text).lower())
    if chinese:
        return _ZH_TOKEN.findall(text)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style token F1 between an answer and a reference, per character for Chinese.

    Chinese tokenisation applies to both strings when either contains a Han character. When both have no
    tokens after normalisation the score is 1.0; when exactly one has none it is 0.0.
    """
    chinese = bool(_HAN.search(prediction) or _HAN.search(reference))
    pred, ref = answer_tokens(prediction, chinese), answer_tokens(reference, chinese)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_containment(prediction: str, reference: str) -> float:
    """Share of the reference's tokens (as counted by `token_f1`) that the answer contains: recall alone, so a
    longer answer that says the reference is not penalised. 1.0 for an empty reference, 0.0 for an empty answer."""
    chinese = bool(_HAN.search(prediction) or _HAN.search(reference))
    pred, ref = answer_tokens(prediction, chinese), answer_tokens(reference, chinese)
    if not ref:
        return 1.0
    return sum((Counter(pred) & Counter(ref)).values()) / len(ref)


# --- abstention and citations -------------------------------------------------------------------------------


def abstention_prf(predicted: Sequence[bool], gold: Sequence[bool]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the "abstain" class (True = abstained / should abstain).

    When a denominator is empty the score is 1.0 if the other side is empty too, else 0.0: no predicted and no
    gold abstentions (including empty inputs) → (1.0, 1.0, 1.0); never abstaining when some answers should be
    withheld → precision 0.0, recall 0.0; abstaining when none should be → recall 0.0. F1 is 0.0 when
    precision + recall is 0.
    """
    if len(predicted) != len(gold):
        raise ValueError(f"predicted has {len(predicted)} items, gold {len(gold)}")
    tp = sum(bool(p) and bool(g) for p, g in zip(predicted, gold, strict=True))
    n_pred = sum(bool(p) for p in predicted)
    n_gold = sum(bool(g) for g in gold)
    precision = tp / n_pred if n_pred else float(n_gold == 0)
    recall = tp / n_gold if n_gold else float(n_pred == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def citation_precision(cited: Sequence[tuple[str, int, int]], gold: Sequence[tuple[str, int, int]]) -> float:
    """Fraction of cited (doc_id, start, end) spans sharing a character with a gold span of the same doc.

    Spans are half-open [start, end) character offsets, so touching spans do not overlap. Each cited entry
    counts, repeats included. No citations → 0.0 (an answer that cites nothing has cited nothing correctly);
    score only answered questions, not abstentions.
    """
    for doc_id, start, end in (*cited, *gold):
        if end < start:
            raise ValueError(f"span ({doc_id!r}, {start}, {end}) ends before it starts")
    if not cited:
        return 0.0
    good = sum(
        any(doc_id == g_doc and max(start, g_start) < min(end, g_end) for g_doc, g_start, g_end in gold)
        for doc_id, start, end in cited
    )
    return good / len(cited)


# --- summaries and uncertainty ------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation, as `numpy.percentile`; NaN for no values."""
    if not 0 <= p <= 100:
        raise ValueError(f"p must be in [0, 100], got {p}")
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), p))


def bootstrap_ci(
    values: Sequence[float], n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap (1 - alpha) confidence interval of the mean; a given seed gives one interval.

    Resamples the values with replacement `n_resamples` times and returns the alpha/2 and 1 - alpha/2
    percentiles of the resample means. No values → (nan, nan).
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    sample = np.asarray(values, dtype=float)  # only read: the caller's array is never written to
    n = sample.size
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    batch = max(1, _BOOTSTRAP_CELLS // n)
    means = np.concatenate(
        [
            sample[rng.integers(0, n, size=(min(batch, n_resamples - done), n))].mean(axis=1)
            for done in range(0, n_resamples, batch)
        ]
    )
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def paired_delta(
    a: Sequence[float], b: Sequence[float], seed: int = 0, n_resamples: int = 1000, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean of b - a over the same queries, with its paired percentile-bootstrap CI: (delta, low, high).

    Pass per-query scores of configuration a (baseline) and b (candidate) in the same query order; a positive
    delta means b scores higher. No values → (nan, nan, nan).
    """
    if len(a) != len(b):
        raise ValueError(f"a has {len(a)} values, b {len(b)}; pair them by query")
    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diffs.size == 0:
        return math.nan, math.nan, math.nan
    low, high = bootstrap_ci(diffs.tolist(), n_resamples=n_resamples, alpha=alpha, seed=seed)
    return float(diffs.mean()), low, high


def reliability(confidence: Sequence[float], correct: Sequence[float], bins: int = 10) -> list[dict[str, float]]:
    """Reliability diagram: per equal-width confidence bin, its count, mean confidence and share correct."""
    conf = np.asarray(confidence, np.float64)
    ok = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        out.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": int(m.sum()),
                "confidence": float(conf[m].mean()) if m.any() else float("nan"),
                "accuracy": float(ok[m].mean()) if m.any() else float("nan"),
            }
        )
    return out


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[float], bins: int = 10) -> float:
    """Count-weighted mean gap between confidence and accuracy over the reliability bins (0 = calibrated)."""
    table = reliability(confidence, correct, bins)
    n = sum(b["count"] for b in table)
    if not n:
        return float("nan")
    return float(sum(b["count"] * abs(b["confidence"] - b["accuracy"]) for b in table if b["count"]) / n)


def roc_auc(score: Sequence[float], positive: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half
    through average ranks); NaN when one class is absent."""
    s = np.asarray(score, np.float64)
    pos = np.asarray(positive, np.float64) == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    for value in np.unique(s):  # ties: their average rank
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
