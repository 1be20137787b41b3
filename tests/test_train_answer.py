"""eval/train_answer.py's threshold choice on dev rows, and the AUC it reports (rag.metrics.roc_auc): tiny, exact."""

from __future__ import annotations

import numpy as np
import pytest

from tests import eval_scripts


@pytest.fixture(scope="module")
def train():  # type: ignore[no-untyped-def]
    return eval_scripts.load("train_answer")


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
    assert t.confident == 0.9


def test_confident_starts_at_nine_in_ten_or_at_the_abstain_threshold(train) -> None:  # type: ignore[no-untyped-def]
    rows = [_row(c, True) for c in (0.05, 0.1, 0.3, 0.5)]
    rows += [_row(c, False) for c in (0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)]
    t = train.choose_thresholds(rows)
    assert 0.3 < t.abstain <= 0.4 and t.confident == train.CONFIDENT == 0.9
    rows = [_row(c, True) for c in (0.9, 0.92, 0.93)] + [_row(c, False) for c in (0.95, 0.96, 0.97, 0.98)]
    assert train.choose_thresholds(rows).confident == train.choose_thresholds(rows).abstain > 0.93


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


def test_the_dev_correction_is_fitted_and_scored_out_of_fold(train) -> None:  # type: ignore[no-untyped-def]
    from rag.answer_model import QUESTION_FEATURES, AnswerModel, Logistic

    n = len(QUESTION_FEATURES)
    flat = Logistic(QUESTION_FEATURES, np.zeros(n), np.ones(n), np.zeros(n), 0.0)  # says 0.5 to everything
    public = AnswerModel(flat, flat)
    col = QUESTION_FEATURES.index("best_type_missing")
    rows = []
    for i in range(60):  # on dev, a missing answer type means unanswerable two times in three
        missing = i % 2 == 0
        x = np.zeros(n)
        x[col] = float(missing)
        rows.append(_row(0.5, missing and i % 3 != 0) | {"id": f"q{i}", "inputs": x})
    rows.append(_row(0.01, True, by_rule=True) | {"id": "rule", "inputs": np.zeros(n)})
    rows.append(_row(0.0, True) | {"id": "empty", "inputs": None})
    correction, confidence, chosen = train.fit_correction(rows, public)
    assert correction.coef[col] < 0 and chosen["l2"] in train.CORRECTION_L2
    missing = [c for r, c in zip(rows[:60], confidence, strict=False) if r["inputs"][col]]
    present = [c for r, c in zip(rows[:60], confidence, strict=False) if not r["inputs"][col]]
    assert max(missing) < min(present)  # out-of-fold, each from a fit without its own row
    assert list(confidence[-2:]) == [0.01, 0.0]  # decided by a rule, or nothing retrieved: unchanged


def test_a_swapped_question_asks_for_a_focus_the_paragraph_never_names(train) -> None:  # type: ignore[no-untyped-def]
    def item(qid: str, group: str, question: str) -> object:
        return train.Item(qid, "t", group, question, "en", {f"d-{group}": (0, "x")}, f"d-{group}")

    items = (
        item("q1", "a", "Which city hosted the seminar on border management?"),
        item("q2", "b", "Which university did the minister attend?"),
    )
    texts = {"d-a": "The seminar on border management was held in Hangzhou.", "d-b": "The minister spoke in Hangzhou."}
    corpus = train.Corpus("t", (), items)
    swapped = train.swapped_questions(corpus, [i.question for i in items], texts)
    # q1's paragraph names a city (Hangzhou) but no university: the focus swap is a near miss. q2's paragraph
    # names a city too, so "Which city …" would be answerable: q2 gets a content-word swap instead
    assert swapped[0] == "Which university hosted the seminar on border management?"
    assert swapped[1] and not swapped[1].startswith("Which city")


def test_a_struck_corpus_cuts_each_answer_sentence_of_both_editions(train) -> None:  # type: ignore[no-untyped-def]
    from rag.types import Document, Meta

    def doc(doc_id: str, text: str, language: str) -> Document:
        return Document(doc_id, text, Meta(title="t", issue=doc_id, language=language, edition_of="p1"), language)

    en = "The seminar met in Hangzhou. It lasted two days. Experts came from Spain."
    zh = "研讨会在杭州举行。会期两天。专家来自西班牙。"
    item = train.Item(
        "q1", "t", "a", "Where did the seminar meet?", "en", {"en": (20, "Hangzhou"), "zh": (0, "杭州")}, "en"
    )
    other = train.Item("q2", "t", "a", "Where were experts from?", "en", {"en": (en.index("Spain"), "Spain")}, "en")
    cut = train.struck_corpus(train.Corpus("c", (doc("en", en, "en"), doc("zh", zh, "zh")), (item, other)))
    assert cut.name == "c-struck" and cut.items == (item, other)
    assert [d.text for d in cut.documents] == ["It lasted two days.", "会期两天。专家来自西班牙。"]
    assert [d.meta.edition_of for d in cut.documents] == ["p1", "p1"]
