"""Metrics on hand-computed toy cases, their edge-case conventions, and properties (Hypothesis)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag.metrics import (
    abstention_prf,
    average_precision_at_k,
    bootstrap_ci,
    citation_precision,
    evaluate,
    hit_at_k,
    mrr_at_k,
    ndcg_at_k,
    paired_delta,
    parse_metric,
    per_query,
    percentile,
    precision_at_k,
    rank,
    recall_at_k,
    token_f1,
)

RANKING_METRICS = [recall_at_k, hit_at_k, precision_at_k, mrr_at_k, ndcg_at_k, average_precision_at_k]


# --- per-query ranking metrics ------------------------------------------------------------------------------


def test_recall_is_a_fraction_and_hit_is_any():
    ranked = ["a", "x", "b", "y"]
    relevant = {"a", "b", "c"}
    assert recall_at_k(ranked, relevant, 1) == pytest.approx(1 / 3)  # a
    assert recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)  # a, x
    assert recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)  # a, b of a, b, c
    assert hit_at_k(ranked, relevant, 1) == 1.0
    assert hit_at_k(["x", "a"], relevant, 1) == 0.0
    assert hit_at_k(["x", "a"], relevant, 2) == 1.0


def test_recall_and_hit_agree_with_one_relevant_id():
    ranked = ["x", "p", "y"]
    for k in (1, 2, 3):
        assert recall_at_k(ranked, {"p"}, k) == hit_at_k(ranked, {"p"}, k)


def test_precision_divides_by_k_even_for_a_short_list():
    assert precision_at_k(["a", "x", "b"], {"a", "b"}, 2) == pytest.approx(1 / 2)  # a of a, x
    assert precision_at_k(["a"], {"a", "b"}, 5) == pytest.approx(1 / 5)


def test_mrr():
    assert mrr_at_k(["x", "y", "a"], {"a"}, 3) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], {"a"}, 2) == 0.0  # a is at rank 3, beyond k
    assert mrr_at_k(["x", "a", "b"], {"a", "b"}, 10) == pytest.approx(1 / 2)  # only the first relevant counts


def test_ndcg_binary():
    # ranks [x, rel, x, rel]: DCG = 1/log2(3) + 1/log2(5)
    # IDCG (two relevant at ranks 1, 2) = 1/log2(2) + 1/log2(3) = 1 + 1/log2(3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at_k(["x", "a", "y", "b"], {"a", "b"}, 4) == pytest.approx(dcg / idcg)  # ≈ 0.6509
    assert ndcg_at_k(["x", "a", "y", "b"], {"a", "b"}, 4) == pytest.approx(0.650921, abs=1e-6)


def test_ndcg_graded_uses_linear_gain_and_a_dict_of_grades():
    # ranked [b (grade 1), a (grade 2)]: DCG = 1/1 + 2/log2(3); ideal [a, b]: IDCG = 2/1 + 1/log2(3)
    expected = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 2) == pytest.approx(expected)  # ≈ 0.8597


def test_ndcg_ideal_is_cut_at_k():
    # three relevant, k=1, the top id relevant: DCG = 1, IDCG@1 = 1
    assert ndcg_at_k(["a", "x"], {"a", "b", "c"}, 1) == 1.0


def test_zero_grades_are_not_relevant():
    relevant = {"a": 0, "b": 1}
    assert hit_at_k(["a"], relevant, 1) == 0.0
    assert recall_at_k(["a", "b"], relevant, 2) == 1.0  # 1 of the 1 relevant id
    assert ndcg_at_k(["a", "b"], relevant, 2) == pytest.approx(1 / math.log2(3))  # DCG 1/log2(3), IDCG 1


def test_average_precision_divides_by_min_of_relevant_and_k():
    ranked = ["a", "x", "b", "y", "c"]
    relevant = {"a", "b", "c", "d"}
    # k=5: relevant at ranks 1, 3, 5 → P@1 = 1, P@3 = 2/3, P@5 = 3/5; divisor min(4, 5) = 4
    # AP = (1 + 2/3 + 3/5) / 4 = (15 + 10 + 9) / 15 / 4 = 34/60 = 17/30
    assert average_precision_at_k(ranked, relevant, 5) == pytest.approx(17 / 30)
    # k=2: relevant at rank 1 only → P@1 = 1; divisor min(4, 2) = 2 → 1/2
    assert average_precision_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)


def test_average_precision_lareqa_case():
    # LAReQA: 11 relevant answers (one per language), mAP@20. All 11 in ranks 1-11 → AP = 1.
    relevant = {f"ans{i}" for i in range(11)}
    ranked = sorted(relevant) + [f"neg{i}" for i in range(9)]
    assert average_precision_at_k(ranked, relevant, 20) == 1.0
    # Same answers after one wrong candidate: P@(i+1) = i/(i+1) for i = 1..11, divisor |R| = 11
    ranked = ["neg", *sorted(relevant)]
    expected = sum(i / (i + 1) for i in range(1, 12)) / 11
    assert average_precision_at_k(ranked, relevant, 20) == pytest.approx(expected)


def test_repeated_ids_earn_credit_once():
    assert recall_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / 2)
    assert precision_at_k(["a", "a"], {"a"}, 2) == pytest.approx(1 / 2)
    assert average_precision_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / 2)  # P@1 = 1, divisor 2
    assert ndcg_at_k(["a", "a"], {"a"}, 2) == 1.0


@pytest.mark.parametrize("metric", RANKING_METRICS)
def test_edge_cases_score_zero_or_stay_defined(metric):
    assert metric([], {"a"}, 5) == 0.0  # empty ranking
    assert metric(["a", "b"], set(), 5) == 0.0  # nothing relevant
    assert metric(["a", "b"], {"a": 0}, 5) == 0.0  # only non-relevant judgements
    assert 0.0 < metric(["x", "a"], {"a"}, 50) <= 1.0  # k longer than the list
    with pytest.raises(ValueError):
        metric(["a"], {"a"}, 0)
    with pytest.raises(TypeError):
        metric(["a"], "a", 1)


def test_k_beyond_list_matches_k_at_list_length():
    ranked, relevant = ["x", "a", "b"], {"a", "b", "c"}
    for metric in (recall_at_k, hit_at_k, mrr_at_k, ndcg_at_k):
        assert metric(ranked, relevant, 50) == metric(ranked, relevant, 3)


def test_metrics_do_not_mutate_arguments():
    ranked, relevant, grades = ["b", "a"], {"a", "b"}, {"a": 2, "b": 1}
    for metric in RANKING_METRICS:
        metric(ranked, relevant, 2)
        metric(ranked, grades, 2)
    assert ranked == ["b", "a"] and relevant == {"a", "b"} and grades == {"a": 2, "b": 1}


# --- rank and metric names ----------------------------------------------------------------------------------


def test_rank_orders_by_score_then_id():
    assert rank({"b": 1.0, "a": 1.0, "c": 2.0, "d": -1.0}) == ["c", "a", "b", "d"]
    assert rank({}) == []


def test_rank_rejects_nan():
    with pytest.raises(ValueError):
        rank({"a": float("nan")})


@pytest.mark.parametrize(
    ("name", "fn", "k"),
    [
        ("R@3", recall_at_k, 3),
        ("Recall@3", recall_at_k, 3),
        ("Hit@1", hit_at_k, 1),
        ("P@5", precision_at_k, 5),
        ("MRR@10", mrr_at_k, 10),
        ("nDCG@10", ndcg_at_k, 10),
        ("NDCG@10", ndcg_at_k, 10),
        ("mAP@20", average_precision_at_k, 20),
    ],
)
def test_parse_metric(name, fn, k):
    assert parse_metric(name) == (fn, k)


@pytest.mark.parametrize("name", ["R@0", "R", "@5", "F1@5", "nDCG@ten", ""])
def test_parse_metric_rejects_bad_names(name):
    with pytest.raises(ValueError):
        parse_metric(name)


# --- corpus-level ranking metrics ---------------------------------------------------------------------------


QRELS = {
    "q1": {"d1": 1},
    "q2": {"d2": 1, "d3": 1},
    "q3": {"d9": 1},  # no results at all → every metric 0
    "q4": {"d4": 0},  # judged, nothing relevant → not scored
}
RESULTS = {
    "q1": {"d1": 0.9, "d5": 0.5},
    "q2": {"d5": 0.9, "d3": 0.8, "d2": 0.1},
    "q9": {"d1": 1.0},  # no qrels → ignored
}


def test_per_query_toy_case():
    table = per_query(QRELS, RESULTS, ("R@1", "Hit@2", "R@2", "MRR@10"))
    assert set(table) == {"q1", "q2", "q3"}
    assert table["q1"] == {"R@1": 1.0, "Hit@2": 1.0, "R@2": 1.0, "MRR@10": 1.0}
    # q2 ranking: d5, d3, d2 → d3 (relevant) at rank 2
    assert table["q2"] == {"R@1": 0.0, "Hit@2": 1.0, "R@2": 0.5, "MRR@10": 0.5}
    assert table["q3"] == {"R@1": 0.0, "Hit@2": 0.0, "R@2": 0.0, "MRR@10": 0.0}


def test_evaluate_means_over_judged_queries():
    scores = evaluate(QRELS, RESULTS, ("R@1", "Hit@2", "R@2", "MRR@10"))
    # R@1: (1 + 0 + 0)/3; Hit@2: (1 + 1 + 0)/3; R@2: (1 + 0.5 + 0)/3; MRR@10: (1 + 0.5 + 0)/3
    assert scores == pytest.approx({"R@1": 1 / 3, "Hit@2": 2 / 3, "R@2": 0.5, "MRR@10": 0.5})


def test_evaluate_default_metrics():
    assert list(evaluate(QRELS, RESULTS)) == ["R@1", "R@5", "MRR@10", "nDCG@10"]


def test_evaluate_on_chosen_qids():
    assert evaluate(QRELS, RESULTS, ("MRR@10",), qids=["q2"]) == {"MRR@10": 0.5}
    assert evaluate(QRELS, RESULTS, ("MRR@10",), qids=["q1", "q2"]) == {"MRR@10": 0.75}
    with pytest.raises(ValueError):
        evaluate(QRELS, RESULTS, ("MRR@10",), qids=["q4"])  # nothing relevant to find
    with pytest.raises(ValueError):
        evaluate(QRELS, RESULTS, ("MRR@10",), qids=["nope"])


def test_evaluate_with_no_queries_is_nan():
    scores = evaluate({}, RESULTS, ("R@1", "MRR@10"))
    assert list(scores) == ["R@1", "MRR@10"]
    assert all(math.isnan(v) for v in scores.values())


def test_evaluate_rejects_unknown_metric_names():
    with pytest.raises(ValueError):
        evaluate(QRELS, RESULTS, ("BLEU@4",))


def test_evaluate_does_not_mutate_inputs():
    qrels, results = copy.deepcopy(QRELS), copy.deepcopy(RESULTS)
    evaluate(qrels, results, ("R@1", "R@5", "Hit@1", "P@3", "MRR@10", "nDCG@10", "mAP@20"))
    per_query(qrels, results, ("nDCG@10",), qids=["q1", "q3"])
    assert qrels == QRELS and results == RESULTS
    assert list(results["q2"]) == ["d5", "d3", "d2"]  # insertion order untouched too


# --- answer text --------------------------------------------------------------------------------------------


def test_token_f1_english_squad_rules():
    # "The cat sat on the mat." → [cat, sat, on, mat]; "a cat on a mat" → [cat, on, mat]
    # common 3: P = 3/4, R = 3/3 → F1 = 2 · (3/4) · 1 / (3/4 + 1) = 6/7
    assert token_f1("The cat sat on the mat.", "a cat on a mat") == pytest.approx(6 / 7)
    assert token_f1("Hello, World!", "hello world") == 1.0
    assert token_f1("cat", "dog") == 0.0


def test_token_f1_counts_repeated_tokens_once_each():
    # [cat, cat] vs [cat]: common 1 → P = 1/2, R = 1 → F1 = 2/3
    assert token_f1("the cat cat", "cat") == pytest.approx(2 / 3)


def test_token_f1_chinese_per_character():
    # 在杭州举行 → 在 杭 州 举 行 (5 tokens); 杭州 → 杭 州 (2); common 2
    # P = 2/5, R = 2/2 = 1 → F1 = 2 · (2/5) · 1 / (2/5 + 1) = (4/5) / (7/5) = 4/7
    assert token_f1("在杭州举行", "杭州") == pytest.approx(4 / 7)
    assert token_f1("杭州", "在杭州举行") == pytest.approx(4 / 7)  # F1 is symmetric


def test_token_f1_chinese_keeps_latin_words_whole():
    # "MMSP 项目 2022年" → mmsp 项 目 2022 年 (5); "mmsp项目" → mmsp 项 目 (3); common 3
    # P = 3/5, R = 1 → F1 = (6/5) / (8/5) = 3/4
    assert token_f1("MMSP 项目 2022年", "mmsp项目") == pytest.approx(3 / 4)


def test_token_f1_full_width_punctuation_and_letters():
    assert token_f1("杭州，中国。", "杭州中国") == 1.0
    assert token_f1("「ＭＭＳＰ」项目！", "MMSP项目") == 1.0
    assert token_f1("ＭＭＳＰ", "mmsp") == 1.0


def test_token_f1_chinese_mode_keeps_a_as_a_word():
    # Chinese mode does not drop English articles: "A股" → a 股 (2); "股" → 股 (1); P = 1/2, R = 1 → 2/3
    assert token_f1("A股", "股") == pytest.approx(2 / 3)


def test_token_f1_empty_conventions():
    assert token_f1("", "") == 1.0
    assert token_f1("the", "  ") == 1.0  # both empty after normalisation
    assert token_f1("cat", "") == 0.0
    assert token_f1("", "杭州") == 0.0
    assert token_f1("。", "杭州") == 0.0


# --- abstention and citations -------------------------------------------------------------------------------


def test_abstention_prf_toy_case():
    predicted = [True, True, False, False, True]
    gold = [True, False, True, False, True]
    # tp = 2 (items 0, 4), predicted 3, gold 3 → P = 2/3, R = 2/3, F1 = 2/3
    assert abstention_prf(predicted, gold) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_abstention_prf_all_abstain():
    # tp = 2, predicted 4, gold 2 → P = 1/2, R = 1, F1 = 2 · (1/2) · 1 / (3/2) = 2/3
    assert abstention_prf([True] * 4, [True, False, True, False]) == pytest.approx((0.5, 1.0, 2 / 3))
    # abstaining on everything when nothing should be withheld: P = 0/4, R = 0 by convention
    assert abstention_prf([True] * 3, [False] * 3) == (0.0, 0.0, 0.0)


def test_abstention_prf_none_abstain():
    # never abstaining when two answers should be withheld: P = 0 by convention, R = 0/2
    assert abstention_prf([False] * 4, [True, False, True, False]) == (0.0, 0.0, 0.0)
    # never abstaining and nothing to withhold: perfect agreement
    assert abstention_prf([False] * 3, [False] * 3) == (1.0, 1.0, 1.0)


def test_abstention_prf_empty_and_mismatched():
    assert abstention_prf([], []) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError):
        abstention_prf([True], [])


def test_citation_precision_toy_case():
    gold = [("d1", 10, 20)]
    cited = [
        ("d1", 15, 25),  # overlaps 15-20
        ("d1", 20, 30),  # touches the end (half-open spans) → no overlap
        ("d2", 10, 20),  # right offsets, wrong document
        ("d1", 0, 11),  # overlaps one character (10)
    ]
    assert citation_precision(cited, gold) == pytest.approx(2 / 4)


def test_citation_precision_edge_cases():
    assert citation_precision([], [("d1", 0, 5)]) == 0.0  # no citations
    assert citation_precision([], []) == 0.0
    assert citation_precision([("d1", 0, 5)], []) == 0.0  # nothing to support it
    assert citation_precision([("d1", 3, 3)], [("d1", 0, 5)]) == 0.0  # empty span covers no character
    assert citation_precision([("d1", 0, 5), ("d1", 0, 5)], [("d1", 4, 9)]) == 1.0
    with pytest.raises(ValueError):
        citation_precision([("d1", 5, 4)], [])


# --- summaries and uncertainty ------------------------------------------------------------------------------


def test_percentile_linear_interpolation():
    values = [4.0, 1.0, 3.0, 2.0]
    # sorted 1, 2, 3, 4; position (n - 1) · p / 100
    assert percentile(values, 50) == 2.5  # position 1.5
    assert percentile(values, 25) == 1.75  # position 0.75 → 1 + 0.75 · (2 - 1)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 90) == 7.0
    for p in (0, 10, 33.3, 50, 90, 99, 100):
        assert percentile(values, p) == pytest.approx(float(np.percentile(values, p)))
    assert values == [4.0, 1.0, 3.0, 2.0]


def test_percentile_edges():
    assert math.isnan(percentile([], 50))
    for p in (-1, 101, float("nan")):
        with pytest.raises(ValueError):
            percentile([1.0], p)


def test_bootstrap_ci_is_deterministic_and_contains_the_mean():
    values = [float(v) for v in range(1, 11)]  # mean 5.5
    low, high = bootstrap_ci(values, seed=0)
    assert (low, high) == bootstrap_ci(values, seed=0)
    assert low < 5.5 < high
    assert low >= 1.0 and high <= 10.0
    assert bootstrap_ci(values, seed=1) != (low, high)
    assert values == [float(v) for v in range(1, 11)]


def test_bootstrap_ci_narrows_with_alpha():
    values = [float(v) for v in range(1, 11)]
    low95, high95 = bootstrap_ci(values, alpha=0.05)
    low50, high50 = bootstrap_ci(values, alpha=0.5)
    assert low95 <= low50 <= 5.5 <= high50 <= high95


def test_bootstrap_ci_batches_do_not_change_determinism():
    values = np.linspace(0.0, 1.0, 5000)
    before = values.copy()
    assert bootstrap_ci(values.tolist(), n_resamples=2000) == bootstrap_ci(values.tolist(), n_resamples=2000)
    np.testing.assert_array_equal(values, before)


def test_bootstrap_ci_edges():
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0)
    assert bootstrap_ci([2.0]) == (2.0, 2.0)
    low, high = bootstrap_ci([])
    assert math.isnan(low) and math.isnan(high)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], alpha=0.0)
    with pytest.raises(ValueError):
        bootstrap_ci([1.0], n_resamples=0)


def test_paired_delta():
    a = [0.0, 0.0, 1.0, 1.0]
    b = [1.0, 1.0, 1.0, 1.0]
    # differences b - a = 1, 1, 0, 0 → mean 0.5; resample means lie in [0, 1]
    delta, low, high = paired_delta(a, b)
    assert delta == 0.5
    assert 0.0 <= low < 0.5 < high <= 1.0
    assert paired_delta(a, b) == (delta, low, high)
    assert paired_delta(b, a)[0] == -0.5
    assert paired_delta(a, a) == (0.0, 0.0, 0.0)


def test_paired_delta_edges():
    assert all(math.isnan(v) for v in paired_delta([], []))
    with pytest.raises(ValueError):
        paired_delta([1.0], [1.0, 2.0])


# --- properties ---------------------------------------------------------------------------------------------

IDS = [f"d{i}" for i in range(8)]
rankings = st.lists(st.sampled_from(IDS), max_size=8, unique=True)
relevant_sets = st.sets(st.sampled_from(IDS), max_size=5)
relevant_grades = st.dictionaries(st.sampled_from(IDS), st.integers(min_value=0, max_value=3), max_size=5)
mixed_text = st.text(alphabet=st.sampled_from(list("ab the,。杭州举行 MMSP１２")), max_size=12)


@given(rankings, st.one_of(relevant_sets, relevant_grades), st.integers(min_value=1, max_value=12))
def test_ranking_metrics_are_in_unit_interval(ranked, relevant, k):
    for metric in RANKING_METRICS:
        assert 0.0 <= metric(ranked, relevant, k) <= 1.0 + 1e-12


@given(rankings, relevant_sets, st.integers(min_value=1, max_value=10))
def test_hit_and_recall_are_monotone_in_k(ranked, relevant, k):
    assert hit_at_k(ranked, relevant, k) <= hit_at_k(ranked, relevant, k + 1)
    assert recall_at_k(ranked, relevant, k) <= recall_at_k(ranked, relevant, k + 1)


@given(rankings, relevant_sets, st.integers(min_value=1, max_value=10))
def test_hit_bounds_recall_and_mrr(ranked, relevant, k):
    assert recall_at_k(ranked, relevant, k) <= hit_at_k(ranked, relevant, k)
    assert mrr_at_k(ranked, relevant, k) <= hit_at_k(ranked, relevant, k)


@given(st.dictionaries(st.sampled_from(IDS), st.floats(-5, 5, allow_nan=False), max_size=8), st.randoms())
def test_rank_ignores_insertion_order(scores, rnd):
    items = list(scores.items())
    rnd.shuffle(items)
    assert rank(dict(items)) == rank(scores)


@given(mixed_text, mixed_text)
def test_token_f1_is_bounded_and_symmetric(prediction, reference):
    score = token_f1(prediction, reference)
    assert 0.0 <= score <= 1.0
    assert score == pytest.approx(token_f1(reference, prediction))
    assert token_f1(prediction, prediction) == 1.0


@given(st.lists(st.tuples(st.booleans(), st.booleans()), max_size=20))
def test_abstention_prf_is_bounded(pairs):
    predicted = [p for p, _ in pairs]
    gold = [g for _, g in pairs]
    assert all(0.0 <= v <= 1.0 for v in abstention_prf(predicted, gold))


spans = st.tuples(st.sampled_from(["d1", "d2"]), st.integers(0, 20), st.integers(0, 10)).map(
    lambda t: (t[0], t[1], t[1] + t[2])
)


@given(st.lists(spans, max_size=6), st.lists(spans, max_size=6))
def test_citation_precision_is_bounded(cited, gold):
    assert 0.0 <= citation_precision(cited, gold) <= 1.0


def test_token_containment_counts_reference_tokens_found_in_the_answer() -> None:
    from rag.metrics import token_containment

    # reference tokens: hangzhou, china (articles and punctuation dropped); the answer holds both
    assert token_containment("It was held in Hangzhou, China, in May.", "Hangzhou, China") == 1.0
    assert token_containment("It was held in Hangzhou.", "Hangzhou, China") == 0.5
    assert token_containment("", "Hangzhou") == 0.0 and token_containment("anything", "") == 1.0
    # Chinese per character: 杭州 in 在杭州举行 → 2 of 2; 中国杭州 → 2 of 4
    assert token_containment("在杭州举行", "杭州") == 1.0
    assert token_containment("在杭州举行", "中国杭州") == 0.5
