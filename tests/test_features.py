"""Question-concept features of the answer model (rag.features): coverage of the question's concepts and the
most specific one a text leaves out, weighted by the language's word frequencies (and the archive's idf, 1
here, and in the pipeline tests). Exact values, no index needed."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rag.features import Coverage, general_weight, question_word

NO_ARCHIVE = SimpleNamespace(lexical=None)  # no passage index: every concept's archive idf is 1


def test_general_weight_orders_words_by_specificity_in_the_language() -> None:
    assert general_weight("the", "en") < general_weight("citi", "en") < general_weight("seminar", "en")
    assert general_weight("seminar", "en") < general_weight("eurorust", "en") == 8.0
    assert general_weight("的", "zh") < general_weight("城市", "zh") < general_weight("研讨会", "zh")
    assert general_weight("hotel", "zh") == general_weight("hotel", "en")  # Latin words read as English


def test_coverage_is_the_share_of_concepts_a_text_expresses() -> None:
    coverage = Coverage(NO_ARCHIVE, "Where was the EuroRust conference held?")  # EuroRust, conference, held
    assert coverage("EuroRust conference 2026-10-10, Paris, France", "en") == pytest.approx(2 / 3)
    assert coverage("EuroRust conference was held in Paris.", "en") == 1.0
    assert coverage("Nothing relevant here.", "en") == 0.0


def test_missing_is_the_most_specific_concept_a_text_leaves_out() -> None:
    coverage = Coverage(NO_ARCHIVE, "In which hotel was the seminar held?")
    assert coverage.missing("The seminar was held in the Grand Hotel.", "en") == 0.0
    assert coverage.missing("The seminar was held in Hangzhou.", "en") == pytest.approx(
        general_weight("hotel", "en") / general_weight("seminar", "en")
    )
    assert coverage.missing("Nothing relevant here.", "en") == 1.0
    # Across languages, through CC-CEDICT: the Chinese sentence that names a hotel (酒店) leaves out less.
    assert coverage.missing("研讨会在杭州的一家酒店举行。", "zh") < coverage.missing("研讨会在杭州举行。", "zh")


def test_chinese_question_words_are_no_concepts() -> None:
    assert [question_word(w) for w in ("几名", "哪家", "哪一年", "何时", "多少年")] == [True] * 5
    assert [question_word(w) for w in ("几乎", "几何", "代表", "几")] == [False] * 4
    # "几名" is what the answer fills in: the passage that gives the number leaves nothing out
    coverage = Coverage(NO_ARCHIVE, "研讨会中方来了几名代表？")
    assert coverage.missing("研讨会中方来了25名代表。", "zh") == 0.0
    assert coverage("研讨会中方来了25名代表。", "zh") == 1.0


def test_a_sentence_is_also_read_with_its_heading_and_the_sentence_before_it(pipeline) -> None:  # type: ignore[no-untyped-def]
    from rag.features import SENTENCE_FEATURES, candidates

    question = "How many representatives attended the Seminar on Migrant Integration?"
    ev = pipeline.evidence(question)
    found = candidates(ev.index, list(ev.hits), ev.query, ev.language, ev.vectors)
    texts = [
        ev.index.documents[ev.index.sentences[c.row][0]].text[slice(*ev.index.sentences[c.row][1:])]
        for c in found.items
    ]
    row = found.features[texts.index("Over 30 representatives attended.")]
    cov, ctx = (row[SENTENCE_FEATURES.index(n)] for n in ("s_cov", "s_ctx_cov"))
    assert cov < 1.0 and ctx == 1.0  # "this seminar" is named by the sentence before and by the heading


def test_naming_the_focus_counts_more_when_few_candidates_do(pipeline) -> None:  # type: ignore[no-untyped-def]
    from rag.features import SENTENCE_FEATURES, candidates

    ev = pipeline.evidence("Which city hosted the Seminar on Migrant Integration?")
    found = candidates(ev.index, list(ev.hits), ev.query, ev.language, ev.vectors)
    missing = found.features[:, SENTENCE_FEATURES.index("focus_missing")]
    rare = found.features[:, SENTENCE_FEATURES.index("focus_rare")]
    share = float((missing == 0).mean())
    assert 0 < share < 1  # some candidates name a city (Hangzhou), others do not
    assert rare.tolist() == [0.0 if m else 1.0 - share for m in missing]
