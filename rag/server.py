"""Running the ASGI app: the listen address (flags, then GRADIO_SERVER_NAME/PORT), uvicorn in a thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def listen_address(host: str | None, port: int | None, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """Flags win, then Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, then 127.0.0.1:7860."""
    env = os.environ if env is None else env
    host = host or env.get("GRADIO_SERVER_NAME") or DEFAULT_HOST
    port = port or int(env.get("GRADIO_SERVER_PORT") or DEFAULT_PORT)
    return host, port


class Server:
    """uvicorn serving `app` on a background thread (tests) or the caller's (`run`)."""

    def __init__(self, app: Any, host: str, port: int, quiet: bool = False) -> None:
        import uvicorn

        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning" if quiet else "info",
            proxy_headers=False,
            lifespan="on",
            timeout_graceful_shutdown=5,  # open event streams (the UI's queue) must not hold a restart for long
        )
        self.server = uvicorn.Server(config)
        self.url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self.server.run()

    def start(self, timeout: float = 30.0) -> Server:
        self._thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self._thread.start()
        deadline = time.time() + timeout
        while not self.server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def close(self) -> None:
        """Stop now: tests and load runs do not wait for idle keep-alive and event-stream connections."""
        self.server.should_exit = True
        self.server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
