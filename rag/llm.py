"""A client for any OpenAI-compatible chat server (Ollama, vLLM, llama.cpp server, LM Studio…): Chat Completions,
streamed as server-sent events, over the standard library's `http.client`.

Every failure is an `LLMError` with a stable `code`, so the caller can fall back to the extractive answer:
`unavailable` (no connection), `timeout` (connect, or the whole answer past its deadline), `http_error`
(a 4xx/5xx, or an error object in the stream), `malformed` (not the protocol), `interrupted` (the stream
ended without its end marker), `empty` (no text at all). Refused connections, 429 and 5xx are retried a bounded
number of times before any text arrived, never after. Nothing here logs a request, a question or a passage.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

Message = Mapping[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}
CODES = ("unavailable", "timeout", "http_error", "malformed", "interrupted", "empty")


class LLMError(Exception):
    """The chat server did not give a usable answer; `code` is one of CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Retryable(LLMError):
    pass


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """Where the server is and how long to wait for it."""

    base_url: str  # up to and including the API root, e.g. http://127.0.0.1:8080/v1
    model: str
    api_key: str = ""
    connect_timeout: float = 3.0
    timeout: float = 60.0  # the whole answer, from the request to the last token
    retries: int = 1
    max_tokens: int = 400
    temperature: float = 0.0


class Generator(Protocol):
    """What writes answer text: streams the reply to chat messages as pieces of text; raises LLMError."""

    def stream(self, messages: Sequence[Message], max_tokens: int | None = None) -> Iterator[str]: ...


class ChatClient:
    """Streams replies from an OpenAI-compatible `/chat/completions` endpoint."""

    def __init__(self, settings: ChatSettings) -> None:
        url = urlsplit(settings.base_url.rstrip("/"))
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"the LLM base URL must be http(s)://host[:port]/path, not {settings.base_url!r}")
        self.settings = settings
        self._url = url
        self.attempts = 0  # requests sent (tests count retries with it)

    def stream(self, messages: Sequence[Message], max_tokens: int | None = None) -> Iterator[str]:
        """The reply's text as it arrives; LLMError on any failure (see the module docstring)."""
        s = self.settings
        body = {
            "model": s.model,
            "messages": [dict(m) for m in messages],
            "stream": True,
            "temperature": s.temperature,
            "max_tokens": max_tokens or s.max_tokens,
        }
        deadline = time.monotonic() + s.timeout
        for attempt in range(s.retries + 1):
            try:
                conn, response = self._open(json.dumps(body).encode("utf-8"), deadline)
                break
            except _Retryable as exc:
                wait = min(0.25 * 2**attempt, deadline - time.monotonic())
                if attempt == s.retries or wait <= 0:
                    raise LLMError(exc.code, str(exc)) from None
                time.sleep(wait)
        try:
            yield from self._read(conn, response, deadline)
        finally:
            conn.close()

    def complete(self, messages: Sequence[Message], max_tokens: int | None = None) -> str:
        """The whole reply as one string."""
        return "".join(self.stream(messages, max_tokens))

    # -- protocol ---------------------------------------------------------------------------------
    def _open(self, body: bytes, deadline: float) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url, s = self._url, self.settings
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        conn = cls(url.hostname or "", url.port, timeout=min(s.connect_timeout, _left(deadline)))
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if s.api_key:
            headers["Authorization"] = f"Bearer {s.api_key}"
        self.attempts += 1
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise LLMError("timeout", "connecting to the LLM server timed out") from None
        except OSError as exc:
            conn.close()
            raise _Retryable("unavailable", f"cannot connect to the LLM server: {type(exc).__name__}") from None
        try:
            conn.sock.settimeout(_left(deadline))
            conn.request("POST", f"{url.path}/chat/completions", body, headers)
            response = conn.getresponse()
        except TimeoutError:
            conn.close()
            raise LLMError("timeout", "the LLM server did not answer in time") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _Retryable("unavailable", f"the LLM server dropped the request: {type(exc).__name__}") from None
        if response.status != 200:
            status = response.status
            conn.close()
            if status == 429 or status >= 500:
                raise _Retryable("http_error", f"the LLM server answered HTTP {status}")
            raise LLMError("http_error", f"the LLM server answered HTTP {status}")
        return conn, response

    def _read(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
    ) -> Iterator[str]:
        kind = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if kind == "application/json":  # a server that ignores `stream`: one whole completion
            yield from _whole(_read_all(conn, response, deadline))
            return
        if kind != "text/event-stream":
            raise LLMError("malformed", f"the LLM server sent {kind or 'no content type'}, not an event stream")
        sent = False
        while True:
            line = _readline(conn, response, deadline)
            if line is None:
                raise LLMError("interrupted", "the LLM server closed the stream before its end")
            line = line.strip()
            if not line or line.startswith(b":"):
                continue
            if not line.startswith(b"data:"):
                if line.startswith((b"event:", b"id:", b"retry:")):
                    continue
                raise LLMError("malformed", "the LLM server sent a line that is not a server-sent event")
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            for piece in _pieces(data):
                sent = True
                yield piece
        if not sent:
            raise LLMError("empty", "the LLM server sent no text")


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise LLMError("timeout", "the LLM server took longer than the time allowed")
    return left


def _readline(conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float) -> bytes | None:
    """One line of the body, within the deadline; None at the end of the body."""
    if conn.sock is not None:
        conn.sock.settimeout(_left(deadline))
    try:
        line = response.readline(1 << 20)
    except TimeoutError:
        raise LLMError("timeout", "the LLM server took longer than the time allowed") from None
    except (OSError, http.client.HTTPException):
        raise LLMError("interrupted", "the connection to the LLM server broke off") from None
    _left(deadline)
    return line or None


def _read_all(conn: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float) -> bytes:
    parts = []
    while (line := _readline(conn, response, deadline)) is not None:
        parts.append(line)
    return b"".join(parts)


def _pieces(data: bytes) -> Iterator[str]:
    """The text pieces of one `chat.completion.chunk`."""
    try:
        chunk = json.loads(data)
    except ValueError:
        raise LLMError("malformed", "the LLM server sent an event that is not JSON") from None
    if not isinstance(chunk, dict):
        raise LLMError("malformed", "the LLM server sent an event that is not a JSON object")
    if chunk.get("error"):
        raise LLMError("http_error", "the LLM server reported an error in the stream")
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise LLMError("malformed", "the LLM server sent a chunk without choices")
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        content = delta.get("content") if isinstance(delta, dict) else None
        if content is not None and not isinstance(content, str):
            raise LLMError("malformed", "the LLM server sent non-text content")
        if content:
            yield content


def _whole(data: bytes) -> Iterator[str]:
    """The text of a non-streamed `chat.completion`."""
    try:
        body = json.loads(data)
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise LLMError("malformed", "the LLM server sent a completion that is not the protocol") from None
    if not isinstance(content, str):
        raise LLMError("malformed", "the LLM server sent non-text content")
    if not content.strip():
        raise LLMError("empty", "the LLM server sent no text")
    yield content
