"""Generated answers, exactly: sentence splitting, citation verification, fallbacks and follow-ups, on the hash
embedder; the chat server is a tiny real HTTP server that answers as scripted (tests/llm_servers.py). The real
llama.cpp server is in test_llm_server.py."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llm_servers import Reply, Scripted, free_port, sse

from rag.embed import HashEmbedder
from rag.generate import grounded_messages, in_language, split_sentences
from rag.llm import ChatClient, ChatSettings, LLMError
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.types import Answer, Draft, Token, Turn
from tests import eval_scripts

EN_Q = "Where was the Seminar on Migrant Integration held?"
QUOTE = "On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China."
ROOT = Path(__file__).resolve().parent.parent


def llm_pipeline(settings: Settings, url: str, **changes: object) -> Pipeline:
    s = settings.replace(
        **{
            "llm_base_url": url,
            "llm_model": "scripted",
            "confident_threshold": 0.0,  # every answer is an "answer" verdict: generation is under test
            "llm_support_threshold": 0.5,  # hash-embedder cosines, not use+e5 ones
            "llm_timeout": 5.0,
            **changes,
        }
    )
    return Pipeline(s, {"hash": HashEmbedder()})


def run(pipe: Pipeline, question: str = EN_Q, history: tuple[Turn, ...] = ()) -> tuple[list, Answer]:
    events = list(pipe.ask_stream(question, history=history))
    final = events[-1]
    assert isinstance(final, Answer)
    return events, final


# --------------------------------------------------------------------------- pure pieces


def test_split_sentences_keeps_markers_with_their_sentence() -> None:
    text = "It was held in Hangzhou [1]. Over 30 people came. [1][2] It cost 9.5 million euros [2, 3]!\nAlso: Beijing"
    assert split_sentences(text) == [
        ("It was held in Hangzhou [1].", (1,)),
        ("Over 30 people came. [1][2]", (1, 2)),
        ("It cost 9.5 million euros [2, 3]!", (2, 3)),
        ("Also: Beijing", ()),
    ]
    assert split_sentences("研讨会在杭州举行[1]。超过30名代表参加[1]。") == [
        ("研讨会在杭州举行[1]。", (1,)),
        ("超过30名代表参加[1]。", (1,)),
    ]
    assert split_sentences(" [1] \n\n") == []


def test_in_language_converts_script_and_rejects_other_languages() -> None:
    assert in_language("在杭州举行[1]。", "zh-hant") == "在杭州舉行[1]。"
    assert in_language("在杭州舉行。", "zh") == "在杭州举行。"
    assert in_language("It was held in Hangzhou [1].", "zh") is None
    assert in_language("研讨会在杭州举行。", "en") is None
    assert in_language("Held in Hangzhou.", "en") == "Held in Hangzhou."


def test_grounded_prompt_numbers_the_passages_and_names_the_language(pipeline: Pipeline) -> None:
    answer = pipeline.ask(EN_Q)
    system, shown, reply, user = grounded_messages(answer)
    assert "English" in system["content"] and "[1]" in system["content"]
    assert (shown["role"], reply["role"]) == ("user", "assistant") and "[1]." in reply["content"]  # a worked example
    assert user["content"].startswith("Passages:\n[1] ") and user["content"].endswith(f"Question: {EN_Q}")
    assert QUOTE in user["content"]
    zh = grounded_messages(Answer("它在哪里举行？", "zh-hant", False, "x", answer.citations))
    assert "繁體中文" in zh[0]["content"] and zh[-1]["content"].startswith("段落：")


# --------------------------------------------------------------------------- verification, through the pipeline


def test_supported_sentences_are_kept_and_unsupported_ones_dropped(settings: Settings) -> None:
    text = [
        "On 9-10 May 2023 the Seminar on Migrant Integration was held in Hangzhou, China [1]. ",
        "Over 500 astronauts attended it [1]. ",
        "Penguins sing opera in Antarctica [1]. ",
        "It was held in Hangzhou [7].",
    ]
    with Scripted(Reply(pieces=sse(*text))) as srv:
        events, final = run(llm_pipeline(settings, srv.url))
    assert isinstance(events[0], Draft) and events[0].answer.mode == "extractive"
    assert "".join(e.text for e in events if isinstance(e, Token)) == "".join(text)
    assert final.mode == "generated" and final.notice == ""
    assert [s.supported for s in final.sentences] == [True, False, False, False]  # number 500, off topic, no [7]
    assert final.answer == text[0].strip()
    assert final.citations == events[0].answer.citations  # the sources are the answer stage's
    assert {"generate", "first_token", "total"} <= set(final.timings_ms)
    d = final.to_dict()
    assert d["mode"] == "generated" and [x["supported"] for x in d["sentences"]] == [True, False, False, False]
    assert srv.requests[0]["stream"] is True and srv.requests[0]["model"] == "scripted"
    assert QUOTE in srv.requests[0]["messages"][-1]["content"]


def test_nothing_supported_falls_back_to_the_extractive_answer(settings: Settings) -> None:
    with Scripted(Reply(pieces=sse("Penguins sing opera in Antarctica [1]."))) as srv:
        events, final = run(llm_pipeline(settings, srv.url))
    draft = events[0].answer
    assert final.mode == "extractive" and final.notice == "unsupported"
    assert final.answer == draft.answer and QUOTE in final.answer
    assert [s.supported for s in final.sentences] == [False]


@pytest.mark.parametrize(
    ("reply", "notice"),
    [
        (Reply(status=500, content_type="application/json", pieces=[b'{"error": "boom"}']), "http_error"),
        (Reply(status=404, content_type="application/json", pieces=[b'{"error": "no model"}']), "http_error"),
        (Reply(content_type="text/html", pieces=[b"<html>proxy login</html>"]), "malformed"),
        (Reply(pieces=[b"this is not an event stream\n\n"]), "malformed"),
        (Reply(pieces=[b"data: {not json\n\n"]), "malformed"),
        (Reply(pieces=[b'data: {"choices": [{"delta": {"content": 5}}]}\n\n']), "malformed"),
        (Reply(pieces=sse()), "empty"),
        (Reply(pieces=sse(" [1] ")), "empty"),
        (Reply(pieces=[b'data: {"error": {"message": "overloaded"}}\n\n']), "http_error"),
        (Reply(pieces=sse("On 9-10 May 2023 the seminar was held ", done=False), close_early=True), "interrupted"),
        (Reply(pieces=sse("研讨会于2023年5月在杭州举行[1]。")), "wrong_language"),
        (Reply(pieces=sse("Held ", "in ", "Hangzhou [1]."), delay=0.6), "timeout"),
    ],
)
def test_faults_fall_back_to_the_extractive_answer_with_a_notice(settings: Settings, reply: Reply, notice: str) -> None:
    with Scripted(reply) as srv:
        events, final = run(llm_pipeline(settings, srv.url, llm_timeout=1.0, llm_retries=0))
    assert final.mode == "extractive" and final.notice == notice
    assert final.answer == events[0].answer.answer and not final.abstained


def test_server_down_falls_back_and_retries_are_bounded(settings: Settings) -> None:
    pipe = llm_pipeline(settings, f"http://127.0.0.1:{free_port()}/v1", llm_retries=2)
    _events, final = run(pipe)
    assert final.notice == "unavailable" and final.mode == "extractive"
    assert pipe._generator().attempts == 3  # type: ignore[attr-defined]


def test_a_5xx_is_retried_then_answered(settings: Settings) -> None:
    ok = Reply(pieces=sse("On 9-10 May 2023 the Seminar on Migrant Integration was held in Hangzhou, China [1]."))
    with Scripted(Reply(status=503, content_type="application/json", pieces=[b"{}"]), ok) as srv:
        _events, final = run(llm_pipeline(settings, srv.url, llm_retries=1))
    assert final.mode == "generated" and len(srv.requests) == 2
    with Scripted(Reply(status=500, content_type="application/json", pieces=[b"{}"])) as srv:
        _events, final = run(llm_pipeline(settings, srv.url, llm_retries=1))
    assert final.notice == "http_error" and len(srv.requests) == 2  # one retry, no more
    with Scripted(Reply(status=400, content_type="application/json", pieces=[b"{}"])) as srv:
        _events, final = run(llm_pipeline(settings, srv.url, llm_retries=3))
    assert final.notice == "http_error" and len(srv.requests) == 1  # a 4xx is not retried


def test_a_stream_that_stalls_past_the_total_timeout_stops_in_time(settings: Settings) -> None:
    import time

    stall = Reply(pieces=sse("Held in Hangzhou [1].", "more", "more", "more"), delay=0.4)
    with Scripted(stall) as srv:
        t0 = time.perf_counter()
        _events, final = run(llm_pipeline(settings, srv.url, llm_timeout=0.7, llm_retries=0))
        took = time.perf_counter() - t0
    assert final.notice == "timeout" and took < 2.0


def test_a_non_streamed_completion_is_read_too() -> None:
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Hello [1]."}}]}).encode()
    with Scripted(Reply(content_type="application/json", pieces=[body])) as srv:
        assert ChatClient(ChatSettings(srv.url, "m")).complete([{"role": "user", "content": "hi"}]) == "Hello [1]."
    with pytest.raises(ValueError, match="base URL"):
        ChatClient(ChatSettings("ftp://x", "m"))
    with Scripted(Reply(status=401, content_type="application/json", pieces=[b"{}"])) as srv:
        with pytest.raises(LLMError) as err:
            ChatClient(ChatSettings(srv.url, "m", api_key="sk-test")).complete([{"role": "user", "content": "hi"}])
        assert err.value.code == "http_error"


def test_only_a_confident_answer_is_sent_to_the_llm(settings: Settings) -> None:
    with Scripted(Reply(pieces=sse("x [1]."))) as srv:
        pipe = llm_pipeline(settings, srv.url)
        _events, final = run(pipe, "zebra quantum volcano")
        assert final.abstained and final.mode == "extractive" and not srv.requests


def test_nothing_about_the_question_is_logged(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    secret = "Where was the Seminar on Migrant Integration held, asks Agent Zebra?"
    with caplog.at_level(logging.DEBUG), Scripted(Reply(status=500, content_type="application/json")) as srv:
        run(llm_pipeline(settings, srv.url, llm_retries=0), secret)
    assert not any("Zebra" in r.getMessage() or "Hangzhou" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- follow-ups


def test_follow_up_without_llm_carries_the_previous_questions_rare_terms(pipeline: Pipeline) -> None:
    from rag.followup import content_words, resolve

    assert content_words("Where was the Seminar on Migrant Integration held?") == [
        "Seminar",
        "Migrant",
        "Integration",
        "held",
    ]
    lexical = pipeline.index().lexical
    resolved = resolve("And who attended?", (Turn(EN_Q, "In Hangzhou [1]."),), lexical)
    assert resolved.startswith("And who attended? ") and "migrant" in resolved and "seminar" in resolved
    assert resolve("Who attended?", (), lexical) == "Who attended?"
    zh = resolve("它在哪里举行？", (Turn("边境管理系统研讨会是哪天？"),), lexical)
    assert zh.startswith("它在哪里举行？ ") and "边境" in zh
    # never confident alone (threshold 1), so the follow-up is read with the previous question's words
    leaning = Pipeline(pipeline.settings.replace(confident_threshold=1.0), pipeline.embedders)
    answer = leaning.ask("And how many representatives attended it?", history=(Turn(EN_Q),))
    assert answer.question == "And how many representatives attended it?"
    assert answer.resolved_question != answer.question and "30 representatives" in answer.answer
    assert answer.to_dict()["resolved_question"] == answer.resolved_question


def test_a_question_that_stands_alone_carries_nothing(settings: Settings) -> None:
    history = (Turn(EN_Q, "In Hangzhou [1]."),)
    # Every answer confident (threshold 0): the question alone is answered, so no earlier word is carried.
    alone = Pipeline(settings.replace(confident_threshold=0.0), {"hash": HashEmbedder()})
    alone.ingest([settings.corpus])
    assert alone._resolve("And who attended?", history, False) == "And who attended?"
    # Never confident (threshold 1): a follow-up is read with the previous question's words ...
    leaning = Pipeline(settings.replace(confident_threshold=1.0), {"hash": HashEmbedder()})
    leaning.ingest([settings.corpus])
    assert leaning._resolve("And who attended?", history, False) != "And who attended?"
    # ... unless its own words are outside the archive: carried words must not rescue "zebra walrus?".
    assert leaning._resolve("zebra walrus?", history, False) == "zebra walrus?"
    assert leaning.ask("zebra walrus?", history=history).abstained


def test_follow_up_with_llm_is_condensed_and_falls_back_when_the_rewrite_is_unusable(settings: Settings) -> None:
    condensed = Reply(pieces=sse("How many representatives attended the Seminar on Migrant Integration?"))
    answer_text = Reply(pieces=sse("Over 30 representatives attended the seminar [1]."))
    history = (Turn(EN_Q, "In Hangzhou [1]."),)
    with Scripted(condensed, answer_text) as srv:
        _events, final = run(llm_pipeline(settings, srv.url), "And how many came?", history)
    assert final.resolved_question == "How many representatives attended the Seminar on Migrant Integration?"
    assert "User: Where was the Seminar" in srv.requests[0]["messages"][1]["content"]
    with Scripted(Reply(pieces=sse("研讨会有多少人？")), answer_text) as srv:  # another language: not used
        _events, final = run(llm_pipeline(settings, srv.url), "And how many came?", history)
    assert final.resolved_question.startswith("And how many came? ") and "migrant" in final.resolved_question


def test_history_from_openai_messages() -> None:
    from rag.openai_compat import history_of

    messages = [
        {"role": "system", "content": "be nice"},
        {"role": "user", "content": "Where was it?"},
        {"role": "assistant", "content": "In Hangzhou [1]."},
        {"role": "user", "content": [{"type": "text", "text": "And when?"}]},
        {"role": "user", "content": "Who came?"},
    ]
    assert history_of(messages) == (Turn("Where was it?", "In Hangzhou [1]."), Turn("And when?"))
    assert history_of([{"role": "user", "content": "hi"}]) == ()


# --------------------------------------------------------------------------- off by default


def test_without_an_llm_no_generation_module_is_loaded(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from conftest import write_corpus
        from pathlib import Path
        from rag.embed import HashEmbedder
        from rag.pipeline import Pipeline
        from rag.service import Service
        from rag.settings import Settings
        from rag.types import Turn
        tmp = Path({str(tmp_path)!r})
        s = Settings(corpus=write_corpus(tmp / "c"), index_root=tmp / "i", data_dir=tmp / "v", embedders=("hash",),
                     abstain_threshold=0.0, confident_threshold=0.0)
        service = Service(Pipeline(s, {{"hash": HashEmbedder()}}))
        a = service.ask("Where was the Seminar on Migrant Integration held?")
        events = list(service.stream("Where was it held?"))
        b = service.ask("And when?", history=(Turn("Where was the Seminar on Migrant Integration held?"),))
        assert a.mode == "extractive" and b.mode == "extractive" and events[-1]["event"] == "answer"
        names = ("rag.generate", "rag.llm", "llama_cpp", "openai", "http.client")
        loaded = sorted(m for m in names if m in sys.modules)
        print(",".join(loaded))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] in ("", "http.client")  # http.client: some dependency's import


# --------------------------------------------------------------------------- the chat UI and the HTTP stream


def test_the_chat_streams_a_generated_answer_and_reads_follow_ups(settings: Settings) -> None:
    from rag.auth import gate_for
    from rag.service import Service
    from rag.ui import Callbacks, new_session

    words = [
        "On 9-10 May 2023 ",
        "the Seminar on Migrant Integration ",
        "was held in Hangzhou, China [1]. ",
        "Bye [1].",
    ]
    with Scripted(Reply(pieces=sse(*words))) as srv:
        pipe = llm_pipeline(settings, srv.url)
        cb = Callbacks(Service(pipe), gate_for(pipe.settings, "127.0.0.1"), stream_delay=0.0)
        session = new_session()
        frames = list(cb.ask(EN_Q, 5, "", "", "", "", session))
        chats = [f[0] for f in frames if isinstance(f[0], str)]
        assert any("streaming" in c and "the Seminar on Migrant Integration" in c for c in chats[:-1])
        final = session["turns"][-1]["answer"]
        assert final.mode == "generated" and "Bye" not in final.answer
        assert 'data-mode="generated"' in chats[-1] and "1 sentence(s) not supported" in chats[-1]
        list(cb.ask("And how many people attended it?", 5, "", "", "", "", session))
        second = session["turns"][-1]["answer"]
        assert second.resolved_question != second.question and "Read as:" in session_chat(cb, session)
        assert "Where was the Seminar" in srv.requests[1]["messages"][1]["content"]  # the condense request


def session_chat(cb: object, session: dict) -> str:
    from rag import render

    return render.conversation_html(session["turns"], session["ui_lang"], session["current"])


def test_the_sse_stream_sends_draft_deltas_and_the_verified_answer(settings: Settings) -> None:
    from rag.service import Service

    with Scripted(
        Reply(pieces=sse("The Seminar on Migrant Integration was held in Hangzhou, China [1]. ", "Penguins sing [1]."))
    ) as srv:
        service = Service(llm_pipeline(settings, srv.url))
        events = list(service.stream(EN_Q))
    kinds = [e["event"] for e in events]
    assert kinds == ["draft", "delta", "delta", "answer"]
    assert (
        "".join(e["data"]["text"] for e in events if e["event"] == "delta")
        == "The Seminar on Migrant Integration was held in Hangzhou, China [1]. Penguins sing [1]."
    )
    assert (
        events[0]["data"]["mode"] == "extractive"
        and events[-1]["data"]["answer"] == "The Seminar on Migrant Integration was held in Hangzhou, China [1]."
    )


def test_the_follow_up_dataset_is_sound_and_rebuilds_byte_for_byte() -> None:

    from test_datasets import corpus_texts

    from rag.followup_eval import load_conversations

    folder = ROOT / "eval" / "datasets" / "mmsp-followup"
    corpus, conversations = load_conversations(folder)
    texts = corpus_texts(corpus)
    follow_ups = [c for c in conversations if c.follow_up]
    assert len(follow_ups) >= 30 and {c.language for c in follow_ups} == {"en", "zh"}
    assert len({c.cid for c in conversations}) == len(conversations)
    for c in conversations:
        assert c.evidence and all(quote in texts[doc_id] for doc_id, quote in c.evidence), c.cid
        assert c.second != c.standalone or not c.follow_up
    builder = eval_scripts.load("build_followup")
    rebuilt = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in builder.build())
    assert rebuilt == (folder / "conversations.jsonl").read_text("utf-8")
