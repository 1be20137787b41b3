"""The JSON contract of an answer, as the CLI, the pipeline and the web app must all give it, in this order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ANSWER_KEYS = [
    "question",
    "language",
    "abstained",
    "verdict",
    "confidence",
    "answer",
    "citations",
    "timings_ms",
    "mode",
    "sentences",
    "notice",
    "resolved_question",
]
CITATION_KEYS = {"n", "doc_id", "title", "issue", "section", "quote", "start", "end", "passage", "score"}


def rag_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, corpus: Path, **settings: str) -> Path:
    """Settings only from RAG_* variables set here (none inherited): the hash embedder, `corpus`, an index root
    and data folder under `tmp_path`, and `settings` (RAG_<NAME> = value). Returns the index root."""
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    values = {"embedders": "hash", **settings, "corpus": str(corpus)}
    values |= {"index_root": str(tmp_path / "index"), "data_dir": str(tmp_path / "var")}
    for name, value in values.items():
        monkeypatch.setenv(f"RAG_{name.upper()}", value)
    return tmp_path / "index"
