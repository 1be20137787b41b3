"""The OpenAI chat-completions shape around an `Answer`, so OpenAI-speaking chat front ends can use the assistant.

The reply `content` is the answer with its [n] markers; the citations travel in an extra top-level field,
`citations` (the same objects as in the JSON contract), and the whole contract in `newsletter_qa`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

from rag.types import Answer, Turn

MODEL_ID = "newsletter-qa"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return str(content or "")


def question_of(messages: list[dict[str, Any]]) -> str:
    """The last user message's text (string content, or the text parts of a content list)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return _text(m.get("content"))
    return ""


def history_of(messages: list[dict[str, Any]]) -> tuple[Turn, ...]:
    """The turns before the last user message: each user message with the assistant reply that followed it."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    turns: list[Turn] = []
    for m in messages[: max(last, 0)]:
        if m.get("role") == "user":
            turns.append(Turn(_text(m.get("content"))))
        elif m.get("role") == "assistant" and turns and not turns[-1].answer:
            turns[-1] = Turn(turns[-1].question, _text(m.get("content")))
    return tuple(turns)


def completion(answer: Answer, model: str) -> dict[str, Any]:
    """A `chat.completion` object for a finished answer."""
    contract = answer.to_dict()
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citations": contract["citations"],
        "newsletter_qa": contract,
    }


def chunks(answer: Answer, model: str, pieces: list[str]) -> Iterator[dict[str, Any]]:
    """`chat.completion.chunk` objects: the role, the answer in pieces, then a final chunk with the citations."""
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        return {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }

    yield chunk({"role": "assistant", "content": ""})
    for piece in pieces:
        yield chunk({"content": piece})
    contract = answer.to_dict()
    yield chunk({}, "stop", citations=contract["citations"], newsletter_qa=contract)
