"""Names a question asks about that no newsletter mentions (rag.scope)."""

from __future__ import annotations

import pytest

from rag.scope import Corpus, chinese_names, content_words, english_names, off_topic, unknown_names

EN = "The Seminar on Migrant Integration was held in Hangzhou. Experts from the European Union and IOM attended."
ZH = "移民融合研讨会在杭州举行。来自欧盟和国际移民组织的专家出席了会议。"
BILINGUAL = Corpus.of([(EN, "en"), (ZH, "zh")])
ENGLISH_ONLY = Corpus.of([(EN, "en")])


def test_corpus_mentions_whole_words_in_either_script() -> None:
    assert BILINGUAL.languages == {"en", "zh"}
    assert BILINGUAL.mentions("hangzhou") and BILINGUAL.mentions("Hangzhou")
    assert not BILINGUAL.mentions("Hang")  # whole words only for Latin script
    assert BILINGUAL.mentions("杭州") and BILINGUAL.mentions("歐盟")  # Traditional matched as Simplified


def test_english_names_are_capitalised_runs_not_sentence_openers() -> None:
    assert english_names("Who won the World Cup in Paris?") == ["World Cup", "Paris"]
    assert english_names("Did experts attend Phase II?") == ["Phase II"]
    assert english_names("What is it?") == []
    # an opening word is a name only when CC-CEDICT writes it capitalised only
    assert english_names("Outline the policy changes.") == []
    assert english_names("Briefly, where was the seminar held?") == []
    assert english_names("Japan sent experts?") == ["Japan"]
    assert english_names("Which EU countries sent experts?") == ["EU"]  # an opening function word is dropped
    assert english_names("Outline IOM's view of integration.") == ["IOM"]  # and an opening imperative


def test_chinese_names_are_proper_nouns_of_two_or_more_characters() -> None:
    assert "澳大利亚" in chinese_names("澳大利亚的专家参加了吗？")
    assert "世界杯" in chinese_names("谁赢得了世界杯？")
    assert chinese_names("会议讨论了什么？") == []
    # jieba tags 城市 and 国家 as places; CC-CEDICT glosses them in lower case: common nouns, not names
    assert chinese_names("研讨会在哪个城市举行？") == []
    assert chinese_names("哪个国家派了专家？") == []


@pytest.mark.parametrize(
    "question,corpus,unknown",
    [
        ("Where was the seminar held?", BILINGUAL, ()),
        ("Was the seminar held in Hangzhou?", BILINGUAL, ()),
        ("Who won the World Cup?", BILINGUAL, ("World Cup",)),
        ("Did experts visit Paris?", BILINGUAL, ("Paris",)),
        # 内地 ("inland", also glossed "Japan") occurs; 日本 does not
        ("Did experts visit Japan?", Corpus.of([(EN, "en"), (ZH + "内地城市。", "zh")]), ("Japan",)),
        # a run joining names the archive mentions, each whole: "IOM" + "European Union"
        ("When did the IOM European Union experts attend?", BILINGUAL, ()),
        ("When did the IOM World Cup experts attend?", BILINGUAL, ("IOM World Cup",)),
        ("Which city hosted the Seminar on Migrant Integration?", BILINGUAL, ()),
        ("移民融合研讨会在哪个城市举行？", BILINGUAL, ()),
        ("澳大利亚的专家参加了吗？", BILINGUAL, ("澳大利亚",)),
        ("谁赢得了世界杯？", ENGLISH_ONLY, ("世界杯",)),  # "world" is too common to count; "cup" is absent
        # named only in the other language: found through CC-CEDICT
        ("杭州的研讨会讨论了什么？", ENGLISH_ONLY, ()),
        ("What did the European Union experts discuss?", Corpus.of([(ZH, "zh")]), ()),
    ],
)
def test_unknown_names(question: str, corpus: Corpus, unknown: tuple[str, ...]) -> None:
    assert unknown_names(question, corpus) == unknown


def test_content_words_leave_out_question_words_and_stopwords() -> None:
    assert content_words("How do I bake sourdough bread?") == ["bake", "sourdough", "bread"]
    assert content_words("怎么做红烧肉？") == ["红烧肉"]


@pytest.mark.parametrize(
    "question,corpus,words",
    [
        ("How do I bake sourdough bread?", BILINGUAL, ("bake", "sourdough", "bread")),
        ("怎么做红烧肉？", BILINGUAL, ("红烧肉",)),
        ("Who attended the seminars?", BILINGUAL, ()),  # inflected forms count ("attended", "seminars")
        ("研讨会有哪些专家？", ENGLISH_ONLY, ()),  # reached through CC-CEDICT: 专家 → experts
        ("How did the experts bake bread?", BILINGUAL, ()),  # one word of the archive is enough to try
    ],
)
def test_off_topic(question: str, corpus: Corpus, words: tuple[str, ...]) -> None:
    assert off_topic(question, corpus) == words
