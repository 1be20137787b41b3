"""A cited sentence's counterpart in the edition written in the question's language (rag.align)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.align import counterpart
from rag.features import read_as
from rag.store import Index, Manifest
from rag.types import Document, Meta

EN = "The seminar was held in Hangzhou. Thirty experts attended."
ZH = "三十名专家出席。研讨会在杭州举行。"


def _index(zh_edition: str = "issue-1") -> Index:
    docs = {
        "en": Document("en", EN, Meta("News", "1", language="en", edition_of="issue-1"), "en"),
        "zh": Document("zh", ZH, Meta("简报", "1", language="zh", edition_of=zh_edition), "zh"),
    }
    sentences = [("en", 0, 33), ("en", 34, 58), ("zh", 0, 8), ("zh", 8, 17)]
    # sentence 0 says what sentence 3 says, sentence 1 what sentence 2 says
    v = np.array([[1, 0, 0], [0, 1, 0], [0.1, 0.99, 0], [0.99, 0.1, 0]], np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    manifest = Manifest(embedders=("x",), dims={"x": 3}, lexical=False, chunker={}, documents={})
    return Index(Path("."), manifest, docs, [], {"x": np.zeros((0, 3), np.float32)}, sentences, {"x": v})


def test_counterpart_is_the_most_similar_sentence_of_the_other_edition() -> None:
    index = _index()
    a = counterpart(index, 0, "zh")
    assert a is not None and (a.doc_id, a.quote, a.start, a.end) == ("zh", "研讨会在杭州举行。", 8, 17)
    assert ZH[a.start : a.end] == a.quote
    b = counterpart(index, 2, "en")
    assert b is not None and b.quote == "Thirty experts attended."


def test_no_counterpart_without_an_edition_in_that_language() -> None:
    assert counterpart(_index(zh_edition="another-issue"), 0, "zh") is None
    assert counterpart(_index(), 0, "en") is None  # the only English edition is the sentence's own


def test_the_answer_features_read_a_sentence_of_the_other_edition_as_its_counterpart() -> None:
    index = _index()
    assert read_as(index, 3, "en") == ("The seminar was held in Hangzhou.", "en")
    assert read_as(index, 3, "zh") == ("研讨会在杭州举行。", "zh")  # already in the question's language
    assert read_as(_index(zh_edition="another-issue"), 3, "en") == ("研讨会在杭州举行。", "zh")  # no English edition


def test_a_quote_gives_way_to_its_retrieved_counterpart_in_the_question_language() -> None:
    from rag.answer import ScoredSentence, in_language

    index = _index()
    zh, en = ScoredSentence(row=3, hit=0, score=0.9), ScoredSentence(row=0, hit=1, score=0.6)
    assert in_language(index, zh, [zh, en], "en") == en
    assert in_language(index, zh, [zh], "en") == zh  # the counterpart was not retrieved: the quote stays
    assert in_language(index, zh, [zh, en], "zh") == zh  # already in the question's language


def test_editions_pair_by_metadata_or_by_file_name_but_for_a_language_tag() -> None:
    from rag.store import edition_groups

    def doc(doc_id: str, title: str = "", issue: str = "", edition_of: str = "") -> Document:
        return Document(doc_id, "x", Meta(title, issue, edition_of=edition_of), "en")

    docs = {
        d.doc_id: d
        for d in [
            doc("library-42", "Library News"),  # no metadata: paired by name with its .zh edition
            doc("library-42.zh", "图书馆通讯"),
            doc("report.en", "Report"),
            doc("report.zh-hant", "報告"),
            doc("a", "News", "7"),  # title and issue
            doc("b", "News", "7"),
            doc("c", edition_of="key"),  # edition_of
            doc("d", edition_of="key"),
            doc("lone"),  # no title, no issue, no partner: its own edition, not everyone's
            doc("other"),
        ]
    }
    groups = edition_groups(docs)
    assert groups["library-42.zh"] == groups["library-42"] == "library-42"
    assert groups["report.zh-hant"] == groups["report.en"]
    assert groups["a"] == groups["b"] == "a" and groups["c"] == groups["d"] == "c"
    assert groups["lone"] == "lone" and groups["other"] == "other"
    assert len(set(groups.values())) == 6


def test_counterpart_of_editions_named_alike_without_metadata() -> None:
    docs = {
        "news": Document("news", EN, Meta("News", language="en"), "en"),
        "news.zh": Document("news.zh", ZH, Meta("简报", language="zh"), "zh"),
    }
    old = _index()
    index = Index(
        Path("."),
        old.manifest,
        docs,
        [],
        old.vectors,
        [("news", *s[1:]) if s[0] == "en" else ("news.zh", *s[1:]) for s in old.sentences],
        old.sentence_vectors,
    )
    aligned = counterpart(index, 0, "zh")
    assert aligned is not None and (aligned.doc_id, aligned.start, aligned.end) == ("news.zh", 8, 17)
