"""kill -9 during an ingest at 5 points: the previous index stays usable, nothing is left behind, and the
re-run embeds only what the killed run had not finished (the content-hash checkpoint, rag/embcache.py)."""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from rag.embcache import CACHE_DIR, EmbeddingCache
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.store import open_index

ROOT = Path(__file__).resolve().parent.parent
BATCH = inspect.signature(Pipeline._embed).parameters["batch"].default  # texts per embedding batch

INGEST = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import rag.store
    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    root, corpus, point, flag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])

    def pause(stage):
        flag.write_text(stage)
        time.sleep(120)

    class Pausing(HashEmbedder):
        calls = 0
        def encode_documents(self, texts):
            Pausing.calls += 1
            if point == f"embed-{Pausing.calls}":
                pause(point)
            return super().encode_documents(texts)

    if point == "write":  # while the version's files are being written
        real_jsonl = rag.store._write_jsonl
        def write_jsonl(path, rows):
            if path.name == "chunks.jsonl":
                pause(point)
            real_jsonl(path, rows)
        rag.store._write_jsonl = write_jsonl
    if point == "pointer":  # the version is complete, the manifest not yet switched to it
        real_replace = rag.store._replace_json
        def replace_json(path, obj):
            pause(point)
            real_replace(path, obj)
        rag.store._replace_json = replace_json
    if point == "cleanup":  # switched; the old version and the checkpoints not yet deleted
        real_clean = rag.store.clean_stale
        calls = []
        def clean_stale(folder):
            calls.append(folder)
            if len(calls) == 2:
                pause(point)
            return real_clean(folder)
        rag.store.clean_stale = clean_stale
    s = Settings(corpus=corpus, index_root=root, embedders=("hash",), lexical=False)
    Pipeline(s, {"hash": Pausing()}).ingest([corpus])
    """
)


class Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def encode_documents(self, texts):  # type: ignore[no-untyped-def]
        self.batches.append(len(texts))
        return super().encode_documents(texts)


def _corpus(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(6):
        paras = [
            f"Item {i}.{j}: the seminar number {i} on migration met in city {j}. Experts from {j + 3} member "
            f"states discussed visas, border management and returns in round {i}."
            for j in range(2 * BATCH)
        ]
        (folder / f"issue-{i}.txt").write_text(f"NEWSLETTER {i}\n\n" + "\n\n".join(paras) + "\n", "utf-8")
    return folder


def _settings(root: Path, corpus: Path) -> Settings:
    return Settings(corpus=corpus, index_root=root, embedders=("hash",), lexical=False)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, list[int]]:
    """Chunks the ingest of the test embeds, and its batches in order (passages, then sentences)."""
    tmp = tmp_path_factory.mktemp("reference")
    corpus = _corpus(tmp / "corpus")
    Pipeline(_settings(tmp / "index", corpus), {"hash": HashEmbedder()}).ingest([corpus / "issue-0.txt"])
    emb = Counting()
    report = Pipeline(_settings(tmp / "index", corpus), {"hash": emb}).ingest([corpus])
    assert math.ceil(report.embedded_chunks / BATCH) >= 3  # enough batches for the kill points below
    return report.embedded_chunks, emb.batches


@pytest.mark.parametrize("point", ["embed-2", "sentences", "write", "pointer", "cleanup"])
def test_kill_9_during_ingest_then_resume(tmp_path: Path, reference: tuple[int, list[int]], point: str) -> None:
    n_embedded, batches = reference
    passage_calls = math.ceil(n_embedded / BATCH)
    if point == "sentences":
        point = f"embed-{passage_calls + 2}"  # the second batch of sentences
    corpus = _corpus(tmp_path / "corpus")
    settings = _settings(tmp_path / "index", corpus)
    first = Pipeline(settings, {"hash": HashEmbedder()})
    first.ingest([corpus / "issue-0.txt"])  # the index before: one newsletter
    flag = tmp_path / "flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", INGEST, str(settings.index_root), str(corpus), point, str(flag)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not (flag.exists() and flag.read_text() == point):
        assert proc.poll() is None and time.time() < deadline, "the ingest ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    after_kill = sorted(open_index(settings.index_dir, ("hash",)).documents)
    assert after_kill == ([f"issue-{i}" for i in range(6)] if point == "cleanup" else ["issue-0"])

    emb = Counting()
    report = Pipeline(settings, {"hash": emb}).ingest([corpus])
    index = open_index(settings.index_dir, ("hash",))
    assert sorted(index.documents) == [f"issue-{i}" for i in range(6)]
    total = sum(batches)
    if point.startswith("embed-"):
        finished = sum(batches[: int(point.split("-")[1]) - 1])  # batches returned before the killed one
        assert 0 < finished < total and sum(emb.batches) == total - finished  # only what was unfinished
    else:
        assert emb.batches == []  # everything was embedded before the kill: nothing again
    print(f"\n{point}: {total} texts to embed in batches of {BATCH}, re-run embedded {sum(emb.batches)}")
    if point == "cleanup":
        assert not report.written
    versions = settings.index_dir / "versions"
    current = json.loads((settings.index_dir / "manifest.json").read_text())["version"]
    assert [p.name for p in versions.iterdir()] == [current]  # no temp build, no old version, no trash
    assert not (settings.index_dir / CACHE_DIR).exists()
    assert sorted(p.name for p in settings.index_dir.iterdir()) == ["manifest.json", "segments", "versions"]


def test_cache_round_trip_and_torn_files_ignored(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "st:/models/x")
    cache.add(["a", "b"], np.eye(2, dtype=np.float32))
    (cache.folder / "torn.npz").write_bytes(b"PK\x03\x04 torn")
    again = EmbeddingCache(tmp_path, "st:/models/x")
    hits = again.lookup(["b", "c", "a"])
    assert sorted(hits) == [0, 2] and hits[0].tolist() == [0.0, 1.0]
    assert again.lookup(["a"], dim=3) == {}  # another model's width: not used
