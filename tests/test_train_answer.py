"""eval/train_answer.py's threshold choice on dev rows, and the AUC it reports (rag.metrics.roc_auc): tiny, exact."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("train_answer", ROOT / "eval" / "train_answer.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["train_answer"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _row(conf: float, unanswerable: bool, cited_right: bool = True, by_rule: bool = False) -> dict:
    return {
        "confidence": conf,
        "unanswerable": unanswerable,
        "citation_precision": None if unanswerable else float(cited_right),
        "never_mentioned": by_rule,
    }


def test_thresholds_maximise_dev_abstention_f1_and_precision(train) -> None:  # type: ignore[no-untyped-def]
    rows = [_row(0.05, True), _row(0.15, True), _row(0.3, False), _row(0.02, True, by_rule=True)]
    rows += [_row(c, False) for c in (0.6, 0.7, 0.8, 0.9, 0.95)]
    t = train.choose_thresholds(rows)
    assert 0.15 < t.abstain <= 0.3  # abstains on exactly the two unanswerable low-confidence questions
    assert t.confident == t.abstain  # every answer above it cites correctly


def test_abstain_threshold_refuses_at_most_a_tenth_of_answerable_questions(train) -> None:  # type: ignore[no-untyped-def]
    # Ten answerable questions, two of them with low confidence; three unanswerable ones, all low.
    rows = [_row(c, True) for c in (0.1, 0.2, 0.3)] + [_row(c, False) for c in (0.15, 0.25)]
    rows += [_row(c, False) for c in (0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.95, 0.97)]
    assert 0.3 < train.choose_thresholds(rows, max_wrong=1.0).abstain <= 0.6  # best F1: refuse all five
    t = train.choose_thresholds(rows, max_wrong=0.1)  # one answerable question refused at most
    assert 0.2 < t.abstain <= 0.25  # refuses 0.1, 0.15 (answerable) and 0.2; not 0.25 (answerable)


def test_auc() -> None:
    from rag.metrics import roc_auc

    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75


def test_calibration_fits_the_dev_share_without_changing_the_order(train) -> None:  # type: ignore[no-untyped-def]
    # The raw model says 0.2-0.4 for questions of which four in five are answerable: too low.
    rows = [_row(c, u) for c, u in ((0.2, True), (0.25, False), (0.3, False), (0.35, False), (0.4, False))] * 4
    rows += [_row(0.01, True, by_rule=True)]  # decided by the name rule: not the model's to calibrate
    c = train.fit_calibration(rows)
    new = [train.recalibrate(r["confidence"], c) for r in rows[:5]]
    assert new == sorted(new) and 0.6 < sum(new) / 5 < 0.9  # same order, near the share answerable (0.8)
    assert train.recalibrate(0.3, type(c)()) == pytest.approx(0.3)  # identity by default
