"""What a question asks for (rag.verify.need) and the signals a sentence gives for it (rag.verify.signals)."""

from __future__ import annotations

import pytest

from rag.verify import Need, carries, need, signals


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
        ("What is the name of the ambassador?", "name"),
        ("大使叫什么名字？", "name"),
        ("Who opened the seminar?", "agent"),
        ("谁主持了会议？", "agent"),
        ("Where was the seminar held?", "place"),
        ("研讨会在哪里举行？", "place"),
        ("What did the seminar discuss?", "other"),
        ("What time does the centre open?", "date"),  # a time of day is asked as a date is
        ("游客中心几点开门？", "date"),
        ("清洁日安排在哪两天？", "date"),  # 在哪 + a time unit asks when, not where
        ("哪一年成立？", "date"),
        ("哪个城市举办了研讨会？", "other"),  # 哪个 + a noun: the focus, not a type
        ("停车一天要多少钱？", "money"),
    ],
)
def test_need_reads_the_answer_type(question: str, kind: str) -> None:
    assert need(question).kind == kind


def test_need_collects_numbers_and_future() -> None:
    n = need("Where will the next Phase II seminar of 2019 be held?")
    assert n == Need(kind="place", numbers=("2019",), future=True)


@pytest.mark.parametrize(
    "question,sentence,ok",
    [
        # counts: dates and ranges of days are not counts; digits inside Chinese text are
        ("How many experts attended?", "The seminar was held from 20 to 23 February 2019.", False),
        ("How many experts attended?", "Some 25 experts attended.", True),
        ("How many experts attended?", "Twelve experts and two officials attended.", True),
        ("有多少名专家参加？", "来自欧盟的25名专家参加了会议。", True),
        ("有多少名专家参加？", "会议于2019年5月9日举行。", False),
        ("How many experts attended?", "The 24/72-hour transit rule applies.", False),  # a slash list of durations
        ("How many countries sent officers?", "Officers came from Austria, Belgium, Croatia and Spain.", True),
        # dates, money, durations
        ("When was the seminar held?", "It took place on May 9.", True),
        ("When was the seminar held?", "It took place in Hangzhou.", False),
        ("What was the budget?", "The budget is EUR 5 million.", True),
        ("What was the budget?", "The budget was discussed.", False),
        ("How long is the visa valid?", "The visa is valid for 144 hours.", True),
        ("What was the budget?", "Parking costs 3 pounds a day.", True),  # any currency, not only euros
        ("停车一天要多少钱？", "停车每天收费5元。", True),
        ("停车一天要多少钱？", "停车场有500个车位。", False),
        ("What time does the centre open?", "It opens on Saturdays.", True),  # weekdays and clock times
        ("What time does the centre open?", "It opens at 10 am.", True),
        ("游客中心几点开门？", "培训晚会于18:30开始。", True),
        ("游客中心几点开门？", "游客中心设有一间教室。", False),
        # people and agents
        ("What is the name of the ambassador?", "Ambassador Nicolas Chapuis spoke.", True),
        ("大使叫什么名字？", "大使发表了讲话。", False),  # names no one
        ("Who organised the seminar?", "ACME China organised the seminar.", True),  # an acronym names an agent
        ("Who organised the seminar?", "The seminar was very successful.", False),
        ("Who suggested the crate?", "Thanks to @tiif for the suggestion!", True),  # a handle names someone
        # places
        ("Where is EuroRust held?", "2026-10-10 — EuroRust — Paris, France", True),
        ("Where was the seminar held?", "The seminar was held last week.", False),
        ("研讨会在哪里举行？", "研讨会在杭州举行。", True),
        # ordinals
        ("第几次举办该研讨会？", "这是第三次举办该研讨会。", True),
        ("第几次举办该研讨会？", "研讨会很成功。", False),
    ],
)
def test_carries_the_asked_kind(question: str, sentence: str, ok: bool) -> None:
    kind = need(question).kind
    assert carries(kind, sentence) is ok
    sig = signals(need(question), sentence, sentence)
    assert (sig.type_ok, sig.type_missing) == ((1.0, 0.0) if ok else (0.0, 1.0))


def test_untyped_questions_give_no_type_signal() -> None:
    sig = signals(need("What did the seminar discuss?"), "It discussed integration.", "It discussed integration.")
    assert (sig.type_ok, sig.type_missing) == (0.0, 0.0)


def test_named_numbers_missing_from_the_passage() -> None:
    n = need("What happened in 2018 and 2019?")
    assert signals(n, "A seminar was held.", "In 2018 a seminar was held.").numbers_missing == 0.5
    assert signals(n, "A seminar was held.", "In 2018 and 2019 seminars were held.").numbers_missing == 0.0


def test_a_next_event_wants_a_passage_about_the_future() -> None:
    n = need("Where will the next seminar be held?")
    assert signals(n, "It will be in Brussels.", "The next seminar will be in Brussels.").future_missing == 0.0
    assert signals(n, "It was in Brussels.", "The seminar was in Brussels.").future_missing == 1.0
