"""What a question asks for (rag.verify.need) and whether a sentence carries it (rag.verify.satisfies)."""

from __future__ import annotations

import pytest

from rag.verify import Need, need, satisfies, serials


@pytest.mark.parametrize(
    "question,kind",
    [
        ("What was the budget of the project?", "money"),
        ("项目的预算是多少？", "money"),
        ("How long is the visa valid?", "duration"),
        ("签证有效期多久？", "duration"),
        ("第几次举办该研讨会？", "ordinal"),
        ("How many times has the dialogue met?", "ordinal"),
        ("How many experts attended?", "count"),
        ("有多少名专家参加？", "count"),
        ("When was the seminar held?", "date"),
        ("研讨会是什麼時候舉行的？", "date"),  # Traditional script is read as Simplified
        ("What is the name of the ambassador?", "person"),
        ("大使叫什么名字？", "person"),
        ("Who opened the seminar?", "agent"),
        ("谁主持了会议？", "agent"),
        ("Where was the seminar held?", "other"),
    ],
)
def test_need_reads_the_answer_type(question: str, kind: str) -> None:
    assert need(question).kind == kind


def test_need_collects_numbers_future_and_serials() -> None:
    n = need("Where will the next MMSP II seminar of 2019 be held?")
    assert n == Need(kind="other", numbers=("2019",), future=True, serials=frozenset({("phase", 2)}))


def test_serials() -> None:
    assert serials("MMSP II and World War II") == {("phase", 2), ("war", 2)}
    assert serials("第三期项目") == {("phase", 3)}
    assert serials("Article V of the I-94 form") == set()  # single letters I/V/X after a word are not numerals


@pytest.mark.parametrize(
    "question,sentence,ok",
    [
        # counts: dates and ranges of days are not counts; digits inside Chinese text are
        ("How many experts attended?", "The seminar was held from 20 to 23 February 2019.", False),
        ("How many experts attended?", "Some 25 experts attended.", True),
        ("How many experts attended?", "Twelve experts and two officials attended.", True),
        ("有多少名专家参加？", "来自欧盟的25名专家参加了会议。", True),
        ("有多少名专家参加？", "会议于2019年5月9日举行。", False),
        ("How many experts attended?", "The 24/72/144-hour visa-free transit policy applies.", False),
        # dates, money, durations
        ("When was the seminar held?", "It took place on May 9.", True),
        ("When was the seminar held?", "It took place in Hangzhou.", False),
        ("What was the budget?", "The budget is EUR 5 million.", True),
        ("What was the budget?", "The budget was discussed.", False),
        ("How long is the visa valid?", "The visa is valid for 144 hours.", True),
        # people and agents
        ("What is the name of the ambassador?", "Ambassador Nicolas Chapuis spoke.", True),
        ("大使叫什么名字？", "代表团访问了欧盟驻华大使馆。", False),  # 大使馆 is an embassy, not an ambassador
        ("Who organised the seminar?", "IOM China organised the seminar.", True),
        ("Who organised the seminar?", "The seminar was very successful.", False),
        # ordinals
        ("第几次举办该研讨会？", "这是第三次举办该研讨会。", True),
        ("第几次举办该研讨会？", "研讨会很成功。", False),
    ],
)
def test_satisfies_checks_the_answer_type(question: str, sentence: str, ok: bool) -> None:
    assert satisfies(need(question), sentence, sentence) is ok


def test_named_numbers_must_appear_in_the_passage() -> None:
    n = need("What happened in 2018?")
    assert satisfies(n, "A seminar was held.", "In 2018 a seminar was held.")
    assert not satisfies(n, "A seminar was held.", "In 2019 a seminar was held.")


def test_a_next_event_needs_a_passage_about_the_future() -> None:
    n = need("Where will the next seminar be held?")
    assert satisfies(n, "It will be in Brussels.", "The next seminar will be in Brussels.")
    assert not satisfies(n, "It was in Brussels.", "The seminar was in Brussels.")


def test_another_phase_of_the_series_does_not_answer() -> None:
    n = need("When did MMSP II start?")
    assert not satisfies(n, "MMSP III started in 2023.", "MMSP III started in 2023.")
    assert satisfies(n, "MMSP II started in 2019.", "MMSP II started in 2019.")
    assert satisfies(n, "The project started in 2019.", "The project started in 2019.")  # names no phase
    assert not satisfies(need("第二期项目何时开始？"), "第三期项目于2023年开始。", "第三期项目于2023年开始。")


@pytest.mark.parametrize(
    "question,head",
    [
        ("In which hotel in Hangzhou was the seminar held?", "hotel"),
        ("Which Chinese city will host the next seminar?", "city"),  # capitalised modifiers are skipped
        ("Which EU countries sent experts?", "countries"),
        ("Which parts of China were visited?", ""),  # generic nouns ask for nothing checkable
        ("Which European institutions sent speakers?", ""),  # category nouns: passages name the members
        ("Where was the seminar held?", ""),
    ],
)
def test_which_head(question: str, head: str) -> None:
    assert need(question).head == head


def test_a_which_question_needs_a_passage_that_speaks_of_its_noun() -> None:
    n = need("In which hotel was the seminar held?")
    assert not satisfies(n, "The seminar was held in Hangzhou.", "The seminar was held in Hangzhou.")
    assert satisfies(n, "It was held at the Grand Hotel.", "It was held at the Grand Hotel.")
    city = need("Which city hosted the seminar?")
    assert satisfies(city, "研讨会在杭州举行。", "研讨会在中国的一个城市杭州举行。")  # through CC-CEDICT
    assert satisfies(need("Which visa-free policy applies?"), "x", "The visa-free transit policy applies.")


@pytest.mark.parametrize(
    "question,noun",
    [
        ("How many countries' embassies were represented?", "embassies"),  # through the possessive
        ("How many Chinese officials attended?", "officials"),  # capitalised modifiers skipped
        ("How many people attended the visit?", "people"),
        ("When was it?", ""),
    ],
)
def test_counted_noun(question: str, noun: str) -> None:
    assert need(question).counted == noun


def test_a_count_can_be_read_off_a_list_attached_to_the_counted_noun() -> None:
    n = need("How many countries' embassies sent officers?")
    listed = "Officers came from the Embassies of Austria, Belgium, Croatia and Spain."
    assert satisfies(n, listed, listed)
    zh = "参加者包括奥地利、比利时、克罗地亚和瑞典大使馆的领事。"
    assert satisfies(n, zh, zh)  # "embassies" reaches 大使馆 through CC-CEDICT
    other = "They visited Meilan Airport, Hainan University, Haikou and Sanya."  # a list, but not of embassies
    assert not satisfies(n, other, other)
    two = "Officers came from the Embassies of Austria and Belgium."  # fewer than three: no count to read
    assert satisfies(n, two, two) is False
