"""The learned answer model: fitting, inference with missing channels, the shipped file, calibration metrics."""

from __future__ import annotations

import numpy as np
import pytest

from rag.answer_model import QUESTION_FEATURES, AnswerModel, Calibration, Logistic, Thresholds, load, sigmoid
from rag.features import SENTENCE_FEATURES
from rag.metrics import expected_calibration_error, reliability


def test_fit_separates_and_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).astype(float)
    a = Logistic.fit(x, y, ("a", "b"))
    b = Logistic.fit(x, y, ("a", "b"))
    assert np.array_equal(a.coef, b.coef)
    assert a.coef[0] > 0 > a.coef[1]
    assert np.mean((a.logit(x) > 0) == (y == 1)) > 0.95


def test_a_fit_with_an_offset_learns_only_the_correction() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 2))
    truth = 2.0 * x[:, 0] - 1.0 * x[:, 1] + 0.5
    y = (rng.random(len(x)) < sigmoid(truth)).astype(float)
    exact = Logistic.fit(x, y, ("a", "b"), l2=1.0, offset=truth)
    assert np.abs(exact.coef).max() < 0.1 and abs(exact.intercept) < 0.1  # the offset already says it all
    half = Logistic.fit(x, y, ("a", "b"), l2=1.0, offset=truth - 1.5 * x[:, 1])  # the offset misses b's sign
    assert half.coef[1] / half.scale[1] == pytest.approx(1.5, abs=0.15) and abs(half.coef[0]) < 0.1


def test_a_signed_fit_keeps_each_weight_on_its_side() -> None:
    # b is a near copy of a: unconstrained, the fit gives b a negative weight that a's larger weight cancels
    rng = np.random.default_rng(2)
    a = rng.normal(size=3000)
    x = np.column_stack([a, a + 0.3 * rng.normal(size=3000), rng.normal(size=3000)])
    y = (rng.random(3000) < sigmoid(2.0 * a + 1.0 * x[:, 2] - 1.0 * x[:, 1])).astype(float)
    names = ("a", "b", "c")
    free = Logistic.fit(x, y, names)
    assert free.coef[1] < 0
    signed = Logistic.fit(x, y, names, signs={"a": 1, "b": 1, "c": -1})
    assert signed.coef[1] == 0.0 and signed.coef[0] > 0 and signed.coef[2] == 0.0  # c's evidence goes the other way
    # b held at 0 and c at 0: the same as fitting on a alone, with the same standardisation
    alone = Logistic.fit(x[:, :1], y, ("a",))
    assert signed.coef[0] / signed.scale[0] == pytest.approx(alone.coef[0] / alone.scale[0], rel=1e-6)
    assert signed.intercept - signed.coef[0] * signed.mean[0] / signed.scale[0] == pytest.approx(
        alone.intercept - alone.coef[0] * alone.mean[0] / alone.scale[0], abs=1e-6
    )
    # signs the free fit already obeys change nothing
    agree = Logistic.fit(x, y, names, signs={"a": 1, "b": -1, "c": 1})
    assert np.allclose(agree.coef, free.coef, atol=1e-9)


def test_a_signed_correction_may_shrink_the_prior_weight_but_never_turn_it_over() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 2))
    y = (rng.random(4000) < sigmoid(-1.0 * x[:, 0] + 1.0 * x[:, 1])).astype(float)  # the data say a is negative
    names = ("a", "b")
    prior = Logistic(names, np.zeros(2), np.full(2, 2.0), np.array([1.0, 1.0]), 0.0)  # raw weight 0.5 on each
    offset = prior.logit(x)
    free = Logistic.fit(x, y, names, l2=0.1, offset=offset)
    assert free.coef[0] / free.scale[0] + 0.5 < -0.5  # unconstrained, the sum on a turns negative
    kept = Logistic.fit(x, y, names, l2=0.1, offset=offset, signs={"a": 1, "b": 1}, prior=prior)
    assert kept.coef[0] / kept.scale[0] + 0.5 == pytest.approx(0.0, abs=1e-12)  # held where the sum is 0
    # a held there: the same as correcting the prior's b alone, with a's part of the prior taken away
    alone = Logistic.fit(x[:, 1:], y, ("b",), l2=0.1, offset=0.5 * x[:, 1])
    assert kept.coef[1] / kept.scale[1] == pytest.approx(alone.coef[0] / alone.scale[0], rel=1e-6)
    with pytest.raises(ValueError):
        Logistic.fit(x, y, ("b", "a"), offset=offset, signs={"a": 1}, prior=prior)


def test_a_dev_correction_adds_to_the_question_logit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lg = Logistic(("a",), np.array([0.0]), np.array([1.0]), np.array([2.0]), -1.0)
    fix = Logistic(("a",), np.array([1.0]), np.array([2.0]), np.array([-1.0]), 0.25)
    model = AnswerModel(lg, lg, correction=fix)
    model.save(tmp_path / "m.json")
    # 2·3 - 1 from the public model, -1·(3-1)/2 + 0.25 from the correction
    assert load(tmp_path / "m.json").confidence(np.array([3.0])) == pytest.approx(float(sigmoid(5.0 - 0.75)))
    assert load(tmp_path / "m.json").record()["corrected_on_dev"] is True


def test_a_missing_feature_reads_as_the_training_mean() -> None:
    m = Logistic(("a", "b"), np.array([1.0, 2.0]), np.array([1.0, 1.0]), np.array([3.0, 5.0]), 0.5)
    assert m.logit(np.array([[np.nan, 2.0]]))[0] == pytest.approx(0.5)
    assert m.logit(np.array([[2.0, np.nan]]))[0] == pytest.approx(3.5)


def test_json_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    lg = Logistic(("a",), np.array([0.0]), np.array([1.0]), np.array([2.0]), -1.0)
    model = AnswerModel(lg, lg, Thresholds(0.3, 0.6), {"version": "x"})
    model.save(tmp_path / "m.json")
    again = load(tmp_path / "m.json")
    assert again.thresholds == Thresholds(0.3, 0.6) and again.version == "x"
    assert again.confidence(np.array([0.0])) == pytest.approx(float(sigmoid(-1.0)))
    calibrated = AnswerModel(lg, lg, calibration=Calibration(a=0.5, b=1.0))
    calibrated.save(tmp_path / "c.json")
    assert load(tmp_path / "c.json").confidence(np.array([0.0])) == pytest.approx(float(sigmoid(0.5 * -1.0 + 1.0)))


def test_the_shipped_model_matches_the_features_and_records_its_data() -> None:
    model = load()
    assert model.sentence.features == SENTENCE_FEATURES
    assert model.question.features == QUESTION_FEATURES
    assert set(model.meta["data"]) == {"xquad", "cmrc", "drcd"}
    assert 0 < model.thresholds.abstain <= model.thresholds.confident < 1


def test_reliability_and_ece() -> None:
    bins = reliability([0.05, 0.15, 0.95, 0.95], [0, 0, 1, 0], bins=10)
    assert [b["count"] for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9]["accuracy"] == 0.5
    # |0.05-0| + |0.15-0| + 2·|0.95-0.5|, over 4
    assert expected_calibration_error([0.05, 0.15, 0.95, 0.95], [0, 0, 1, 0]) == pytest.approx((0.05 + 0.15 + 0.9) / 4)
