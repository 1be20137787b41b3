"""Offline for real: ingest and ask in a process without a network (`unshare -n`) and without HF_HUB_OFFLINE.

With the hub's offline switches unset and an empty Hugging Face cache, any hidden download would be attempted,
and fail; the commands must succeed anyway.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def no_network() -> list[str]:
    """The command prefix that runs a process in a fresh network namespace (loopback only, down)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"`unshare -n` is not permitted here (needs CAP_SYS_ADMIN): {probe.stderr.strip()}")
    return ["unshare", "-n"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_") and k not in OFFLINE_SWITCHES}
    env.update(
        RAG_INDEX_ROOT=str(tmp_path / "index"),
        RAG_DATA_DIR=str(tmp_path / "var"),
        HF_HOME=str(tmp_path / "hf"),  # an empty hub cache: nothing to fall back on
    )
    return env


def _cli(prefix: list[str], env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "rag.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_namespace_has_no_network(no_network: list[str]) -> None:
    code = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=3)\nexcept OSError as e:\n"
    code += "    print('unreachable', e.errno)\nelse:\n    print('connected')\n"
    out = subprocess.run([*no_network, sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("unreachable")


@pytest.mark.parametrize(
    "embedders,question",
    [
        ((), "移民融合研讨会在哪里举行？"),  # the defaults: use + e5 + BM25
        (("--embedders", "st:all-MiniLM-L6-v2"), "Where was the Seminar on Migrant Integration held?"),
    ],
    ids=["default", "minilm"],
)
def test_ingest_and_ask_offline(no_network: list[str], tmp_path: Path, embedders: tuple[str, ...], question: str):
    env = _env(tmp_path)
    ingest = _cli(no_network, env, "ingest", "data/newsletters", "--index", "offline", *embedders)
    assert ingest.returncode == 0, ingest.stderr
    assert ingest.stdout.splitlines()[-1].startswith("index 'offline': 2 added, 0 updated, 0 unchanged, 0 skipped")
    ask = _cli(no_network, env, "ask", question, "--index", "offline", "--json", *embedders)
    assert ask.returncode == 0, ask.stderr
    answer = json.loads(ask.stdout)
    assert not answer["abstained"] and answer["citations"], answer
    assert answer["citations"][0]["quote"] in answer["answer"]
    assert not (tmp_path / "hf" / "hub").exists() or not any((tmp_path / "hf" / "hub").iterdir())
