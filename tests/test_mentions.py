"""Name checks from per-segment postings (rag.mentions) answer exactly as the scan of the archive's text."""

from __future__ import annotations

import numpy as np
import pytest

from rag.mentions import Mentions, SegmentMentions, han_pairs
from rag.scope import Corpus, off_topic, unknown_names

DOCS = [
    ("The Seminar on Migrant Integration was held in Hangzhou. Experts from the European Union attended.", "en"),
    ("移民融合研讨会在杭州举行。来自欧盟和国际移民组织的专家出席了会议。", "zh"),
    ("MMSP II closed; the EU-China dialogue (c++ tools, U.S. visitors) met in Beijing.", "en"),
    ("歐盟專家訪問北京，討論了簽證政策。T恤", "zh-hant"),
]
TERMS = [
    "hangzhou", "Hang", "european union", "union european", "MMSP II", "mmsp", "eu-china", "china dialogue",
    "c++", "u.s.", "s. visitors", "杭州", "欧盟", "歐盟專家", "北京", "签证", "上海", "t恤", "恤", "移", "研讨会在",
    "integration", "integrate", "integrated", "korea", "exper", "", "  ", "world cup", "x", "会议。",
]  # fmt: skip


@pytest.mark.parametrize("dead", [None, [False, True, False, False], [True, False, False, True]])
def test_mentions_equal_the_scan_of_the_live_documents(dead: list[bool] | None) -> None:
    live = [d for i, d in enumerate(DOCS) if dead is None or not dead[i]]
    scan = Corpus.of(live)
    # two segments: the documents split 1 + 3, the tombstones carried to each
    first, rest = SegmentMentions.of([DOCS[0][0]]), SegmentMentions.of(t for t, _ in DOCS[1:])
    mask = None if dead is None else np.array(dead)
    index = Mentions(
        [(first, None if mask is None else mask[:1]), (rest, None if mask is None else mask[1:])],
        (lang for _t, lang in live),
    )
    assert index.languages == scan.languages
    for term in TERMS:
        assert index.mentions(term) == scan.mentions(term), term
        assert index.has_word_starting(term.lower()) == scan.has_word_starting(term.lower()), term
    for question in ("Who won the World Cup in Hangzhou?", "欧盟和世界杯的专家？", "How do I bake sourdough bread?"):
        assert unknown_names(question, index) == unknown_names(question, scan)
        assert off_topic(question, index) == off_topic(question, scan)


def test_candidates_are_the_documents_holding_every_key() -> None:
    m = SegmentMentions.of(t for t, _ in DOCS)
    assert m.candidates("european union").tolist() == [0]
    assert m.candidates("欧盟").tolist() == [1, 3]  # 歐盟 is stored as 欧盟
    assert m.candidates("恤") is None  # one Han character: no pair to narrow it down
    assert len(han_pairs("a杭州b北")) == 1


def test_saved_mentions_load_as_they_were(tmp_path) -> None:
    m = SegmentMentions.of(t for t, _ in DOCS)
    m.save(tmp_path / "mentions")
    got = SegmentMentions.load(tmp_path / "mentions")
    assert bytes(got.blob) == m.blob and list(got.words) == list(m.words)
    index, want = Mentions([(got, None)], ["en", "zh"]), Mentions([(m, None)], ["en", "zh"])
    for term in TERMS:
        assert index.mentions(term) == want.mentions(term), term
    SegmentMentions.of([]).save(tmp_path / "empty")
    assert not Mentions([(SegmentMentions.load(tmp_path / "empty"), None)], []).mentions("x")
