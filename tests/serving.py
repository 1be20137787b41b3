"""A real server on loopback for the HTTP, security, OpenAI-client and widget tests (hash embedder)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import write_corpus
from test_app import free_port, load_app_module

from rag.auth import KeyStore, gate_for
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.service import Service
from rag.settings import Settings

ADMIN_PASSWORD = "s3cret-admin"


@contextlib.contextmanager
def running(tmp: Path, bind: str = "127.0.0.1", **changes: Any) -> Iterator[dict[str, Any]]:
    """A server on 127.0.0.1 whose policy is that of one bound to `bind` (e.g. 0.0.0.0); yields its facts.

    Keys `ask_key` and `admin_key` exist; `changes` override settings (admin_password defaults to ADMIN_PASSWORD).
    """
    corpus = write_corpus(tmp / "corpus")
    settings = Settings(
        corpus=corpus,
        index_root=tmp / "index",
        data_dir=tmp / "var",
        embedders=("hash",),
        abstain_threshold=0.0,  # mechanics under test, not the answer model (hash vectors)
        admin_password=ADMIN_PASSWORD,
    ).replace(**changes)
    keys = KeyStore(settings.data_dir / "keys.json")
    _rec, ask_key = keys.create("portal", ("ask",))
    _rec, admin_key = keys.create("ops", ("ask", "admin"))
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.warm_up()
    service = Service(pipe)
    gate = gate_for(settings, bind)
    appmod = load_app_module()
    blocks = appmod.build_app(service, gate)
    port = free_port()
    server = appmod.serve(blocks, "127.0.0.1", port, quiet=True)
    try:
        yield {
            "url": f"http://127.0.0.1:{port}",
            "port": port,
            "settings": settings,
            "service": service,
            "gate": gate,
            "blocks": blocks,
            "ask_key": ask_key,
            "admin_key": admin_key,
        }
    finally:
        server.close()
        shutil.rmtree(tmp / "index", ignore_errors=True)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
