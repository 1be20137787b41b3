"""Fuzzed questions (Hypothesis): any Unicode, surrogates and control characters included, never raise
anything but a QuestionError, and questions in other languages get the polite abstention."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.answer import UNSUPPORTED
from rag.embed import HashEmbedder
from rag.lang import supported
from rag.pipeline import Pipeline, QuestionError

ANY_CHAR = st.characters(codec=None, categories=None)  # every code point, lone surrogates included
OTHER_SCRIPTS = [
    "Где прошёл семинар по интеграции мигрантов?",
    "أين عقدت الندوة حول اندماج المهاجرين؟",
    "이주민 통합 세미나는 어디에서 열렸습니까?",
    "移民統合セミナーはどこで開催されましたか？",
    "🙂🙂🙂",
    "?!…。，",
    "¿¡!?",
]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    from rag.settings import Settings
    from tests.conftest import write_corpus

    tmp = tmp_path_factory.mktemp("fuzz")
    corpus = write_corpus(tmp / "corpus")
    s = Settings(corpus=corpus, index_root=tmp / "index", embedders=("hash",), abstain_threshold=0.2)
    p = Pipeline(s, {"hash": HashEmbedder()})
    p.index()
    return p


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.text(ANY_CHAR, max_size=80))
def test_no_exception_escapes_and_the_answer_encodes(pipe: Pipeline, question: str) -> None:
    try:
        answer = pipe.ask(question)
    except QuestionError as exc:
        assert len(str(exc)) < 300
        return
    text = json.dumps(answer.to_dict(), ensure_ascii=False)
    text.encode("utf-8")  # no surrogate survives into the output


@pytest.mark.parametrize("question", OTHER_SCRIPTS)
def test_other_languages_get_the_polite_abstention(pipe: Pipeline, question: str) -> None:
    answer = pipe.ask(question)
    assert answer.abstained and answer.answer == UNSUPPORTED and not answer.citations


SCRIPTS = [  # Greek, Cyrillic, Armenian, Hebrew, Arabic, Devanagari, Thai, Georgian, kana, hangul
    (0x391, 0x3C9), (0x410, 0x44F), (0x531, 0x556), (0x5D0, 0x5EA), (0x627, 0x64A), (0x915, 0x939),
    (0xE01, 0xE2E), (0x10D0, 0x10F0), (0x3041, 0x3096), (0x30A1, 0x30FA), (0xAC00, 0xD7A3),
]  # fmt: skip
OTHER_LETTER = st.one_of([st.characters(min_codepoint=a, max_codepoint=b).filter(str.isalpha) for a, b in SCRIPTS])
QUESTION_MARKS = st.sampled_from(["", "?", "？", " ", "!"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=st.tuples(st.text(OTHER_LETTER, min_size=3, max_size=30), QUESTION_MARKS).map("".join))
def test_letters_of_any_other_script_abstain(pipe: Pipeline, question: str) -> None:
    assert not supported(question)
    answer = pipe.ask(question)
    assert answer.abstained and answer.answer == UNSUPPORTED


def test_english_and_chinese_questions_still_answer(pipe: Pipeline) -> None:
    assert supported("Where was the seminar held?") and supported("研讨会在哪里举行？")
    assert supported("MMSP 项目是什么？") and supported("What does 'спасибо' mean?")
    assert not pipe.ask("Where was the Seminar on Migrant Integration held?").abstained
