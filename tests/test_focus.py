"""The focus of a wh-question (rag.focus): the noun it asks an instance of, and whether a sentence names one."""

from __future__ import annotations

import pytest

from rag.focus import focus, named_in


@pytest.mark.parametrize(
    "question,word",
    [
        ("Which city hosted the seminar?", "city"),  # a verb in -ed ends the noun phrase
        ("Which city hosts the seminar?", "city"),  # so does a word followed by an article
        ("In which Hainan port area did the delegation stop?", "area"),  # the head is the phrase's last word
        ("What is the email address of the team?", "address"),
        ("How many Chinese representatives attended?", "representatives"),
        ("How many foreign students did the delegation meet?", "students"),  # an adjective before the head
        ("Which visa-free transit policy was resumed?", "policy"),
        ("What number of embassies sent staff?", "embassies"),  # "number of X" counts X
        ("What is the number of participants?", "participants"),
        ("What did the presentations focus on?", ""),  # "what" asks no noun
        ("Who is the president of France?", ""),
        ("When was the seminar?", ""),
        ("移民融合研讨会在哪个城市举行？", "城市"),
        ("研讨会在北京哪家酒店举行？", "酒店"),
        ("海南考察中参观了哪所大学？", "大学"),  # a classifier between the interrogative and the noun
        ("移民融合研讨会的会议语言是什么？", "语言"),  # "X是什么": the noun before the copula
        ("欧洲刑警组织派了几名专家？", "专家"),
        ("研讨会有多少名中方代表？", "代表"),  # a locality word (中方) before the noun, as an adjective in English
        ("研讨会的参会人数是多少？", ""),  # 人数 "number of people" names the count, as "number of" does
        ("研讨会在哪里举行？", ""),
    ],
)
def test_focus_word(question: str, word: str) -> None:
    assert focus(question).word == word


def test_a_chinese_focus_is_read_in_english_through_its_best_glosses() -> None:
    f = focus("移民融合研讨会的会议语言是什么？")
    assert f.en == {"languag"} and f.zh == {"语言"}


@pytest.mark.parametrize(
    "question,sentence,named",
    [
        ("Which city hosted the seminar?", "The seminar was held in Hangzhou on 9 May.", True),  # 杭州: "… city …"
        ("Which hotel hosted the seminar?", "The seminar was held in Hangzhou on 9 May.", False),
        ("Which hotel hosted the seminar?", "It took place at the Hilton hotel.", True),  # the word itself
        ("移民融合研讨会在哪个城市举行？", "研讨会在杭州举行。", True),
        ("海南考察中参观了哪所大学？", "The delegation visited Hainan University.", True),  # a translation
        ("海南考察团在三亚住在哪家酒店？", "The delegation stayed in Sanya.", False),
        ("Which university did he graduate from?", "He graduated from 北京大学.", True),  # 大学 inside a name
    ],
)
def test_named_in(question: str, sentence: str, named: bool) -> None:
    assert named_in(focus(question), sentence) is named


def test_cedict_reads_an_english_name_as_the_chinese_names_of_its_pinyin() -> None:
    from rag import cedict

    assert cedict.names_read_as("Hangzhou") == ("杭州",)  # the city, not 杭 or 杭州湾 (glossed "Hangzhou" too)
    assert cedict.names_read_as("Brussels") == ()  # no pinyin reading: the English gloss decides instead
