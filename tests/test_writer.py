"""The add path: the writer yields the CPU (a lowered thread), each distinct text is embedded once, checkpointed
vectors are reused, and e5's batches are shared evenly between its worker threads."""

from __future__ import annotations

import contextvars
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from rag import priority
from rag.e5fast import FastE5
from rag.embcache import EmbeddingCache
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.store import open_index

linux = pytest.mark.skipif(not priority.supported(), reason="per-thread nice values are Linux's")


class Recording(HashEmbedder):
    """Records the texts it embeds and the nice value of the thread that embeds them."""

    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []
        self.nice: set[int] = set()

    def encode_documents(self, texts):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        self.nice.add(priority.thread_nice())
        return super().encode_documents(texts)


@linux
def test_work_runs_lowered_and_the_caller_keeps_its_priority() -> None:
    before = priority.thread_nice()
    seen = priority.run_lowered(lambda: (priority.thread_nice(), threading.get_native_id()), 3)
    assert seen[0] == min(19, before + 3) and seen[1] != threading.get_native_id()
    assert priority.thread_nice() == before
    nested = priority.run_lowered(lambda: priority.run_lowered(priority.thread_nice, 3), 3)
    assert nested == min(19, before + 3)  # lowered once, not twice
    assert priority.run_lowered(threading.get_native_id, 0) == threading.get_native_id()  # 0: in place


def test_the_lowered_work_sees_the_callers_context_variables() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")
    var.set("admin")
    assert priority.run_lowered(var.get, 5) == "admin"


def test_an_exception_in_the_lowered_work_reaches_the_caller() -> None:
    def fail() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        priority.run_lowered(fail, 5)


@linux
def test_ingest_embeds_at_the_writer_priority_and_records_it(settings, corpus: Path) -> None:
    emb = Recording()
    before = priority.thread_nice()
    Pipeline(settings.replace(writer_nice=4), {"hash": emb}).ingest([corpus])
    assert emb.nice == {min(19, before + 4)} and priority.thread_nice() == before
    manifest = json.loads((settings.index_dir / "manifest.json").read_text())
    assert manifest["writer"] == {"nice": 4}


def test_each_distinct_text_is_embedded_once(settings, tmp_path: Path) -> None:
    folder = tmp_path / "one"
    folder.mkdir()
    # one-sentence paragraphs: passages whose text is also a sentence's; and a line that repeats
    (folder / "brief.txt").write_text(
        "BRIEF\n\nThe Director General visited China in April 2023.\n\nThe office opened in May.\n\n"
        "BRIEF AGAIN\n\nThe office opened in May.\n",
        "utf-8",
    )
    emb = Recording()
    Pipeline(settings.replace(corpus=folder), {"hash": emb}).ingest([folder])
    assert len(emb.embedded) == len(set(emb.embedded))
    index = open_index(settings.index_dir, ("hash",))
    sentence_text = [index.documents[d].text[a:b] for d, a, b in index.sentences]
    passages = [c.text for c in index.chunks]
    shared = set(sentence_text) & set(passages)
    assert shared and "The office opened in May." in sentence_text
    # the stored vectors are those of the text wherever it is stored
    for text in shared:
        want = HashEmbedder().encode_documents([text])[0]
        np.testing.assert_array_equal(np.asarray(index.vectors["hash"])[passages.index(text)], want)
        np.testing.assert_array_equal(np.asarray(index.sentence_vectors["hash"])[sentence_text.index(text)], want)


def test_checkpointed_vectors_are_reused_not_recomputed(settings, corpus: Path) -> None:
    text = "The Director General visited China in April 2023."
    extra = corpus / "extra.txt"
    extra.write_text(f"INFOBITES\n\n{text}\n", "utf-8")
    marker = np.full(HashEmbedder().dim, 1 / np.sqrt(HashEmbedder().dim), np.float32)
    EmbeddingCache(settings.index_dir, "hash").add([text], marker[None, :])  # as an interrupted ingest left it
    emb = Recording()
    Pipeline(settings, {"hash": emb}).ingest([corpus])
    assert text not in emb.embedded
    index = open_index(settings.index_dir, ("hash",))
    rows = [i for i, c in enumerate(index.chunks) if c.text == text]
    assert rows and all(np.array_equal(np.asarray(index.vectors["hash"])[r], marker) for r in rows)


def _windows(lengths: list[int]) -> list[tuple[int, list[int]]]:
    return [(i, [7] * n) for i, n in enumerate(lengths)]


@pytest.mark.parametrize("workers", [2, 3])
def test_e5_batches_are_shared_evenly_between_workers(workers: int) -> None:
    fast = object.__new__(FastE5)  # batching only: no weights needed
    fast._max_batch_tokens = 2048
    windows = _windows([100 + (i % 40) for i in range(47)])  # ~47 passages of ~120 tokens
    order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))
    budget = fast._budget(windows, workers)
    batches = fast._batches(order, windows, budget)
    padded = [max(len(windows[j][1]) + 2 for j in b) * len(b) for b in batches]
    assert budget <= 2048 and max(padded) <= budget
    assert len(batches) % workers == 0 or len(batches) > 3 * workers
    assert max(padded) <= 1.5 * min(padded)
    assert sorted(j for b in batches for j in b) == list(range(len(windows)))
    assert fast._budget(windows, 1) == 2048  # one worker: the budget as configured


def test_an_update_embeds_only_the_texts_its_indexed_version_lacks(settings, corpus: Path) -> None:
    emb = Recording()
    pipe = Pipeline(settings, {"hash": emb})
    pipe.ingest([corpus])
    before = open_index(settings.index_dir, ("hash",))
    old_chunks = {c.text: np.asarray(before.vectors["hash"])[i] for i, c in enumerate(before.chunks)}
    old_texts = set(old_chunks) | {before.documents[d].text[a:b] for d, a, b in before.sentences}
    emb.embedded.clear()
    path = corpus / "news-en.txt"
    path.write_text(path.read_text("utf-8") + "\n\nINFOBITES\n\nThe office in Hangzhou opened in May 2023.\n", "utf-8")
    report = pipe.ingest([path])
    assert report.updated == ("news-en",) and any("opened in May 2023" in t for t in emb.embedded)
    assert not set(emb.embedded) & old_texts  # nothing the indexed version had is embedded again
    after = open_index(settings.index_dir, ("hash",))
    live = [i for i, c in enumerate(after.chunks) if c.doc_id == "news-en" and (after.live is None or after.live[i])]
    kept = [i for i in live if after.chunks[i].text in old_chunks]
    assert kept and report.embedded_chunks == len(live) - len(kept) > 0
    for i in kept:  # their vectors copied from the indexed version
        np.testing.assert_array_equal(np.asarray(after.vectors["hash"])[i], old_chunks[after.chunks[i].text])
