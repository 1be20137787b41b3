"""Index folders: plain files, atomic rebuilds, refusal of a mismatched embedder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rag.store import IndexMismatch, IndexNotFound, list_indexes, open_index

ROOT = Path(__file__).resolve().parent.parent


def test_index_is_a_folder_of_plain_files(pipeline, settings) -> None:
    pipeline.ingest([settings.corpus])
    top = json.loads((settings.index_dir / "manifest.json").read_text())
    assert sorted(p.name for p in settings.index_dir.iterdir()) == ["manifest.json", "segments", "versions"]
    assert [p.name for p in (settings.index_dir / "versions").iterdir()] == [top["version"]]
    version = settings.index_dir / "versions" / top["version"]
    assert [p.name for p in version.iterdir()] == ["manifest.json"]  # a version is a list of segments
    [entry] = top["segments"]
    assert [p.name for p in (settings.index_dir / "segments").iterdir()] == [entry["name"]]
    folder = settings.index_dir / "segments" / entry["name"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "chunks.jsonl",
        "documents.jsonl",
        "lexical",
        "mentions",  # the documents' text and postings for the name checks (rag.mentions)
        "segment.json",
        "sentences-hash.npy",
        "sentences.jsonl",
        "table.json",  # the chunks and sentences as columns (rag.tables): what a reader opens
        "table.npz",
        "vectors-hash.npy",
    ]
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest == top  # the pointer is a copy of the current version's manifest
    assert manifest["embedders"] == ["hash"] and manifest["dims"] == {"hash": 256}
    assert manifest["format_version"] == 4 and manifest["chunker"]["size"] == settings.chunk_size
    assert set(manifest["documents"]) == {"news-en", "news-zh"}
    assert entry["dense"] == "flat" and entry["deleted"] == [] and entry["documents"] == 2
    assert manifest["search"]["flat_max"] == 50_000 and manifest["search"]["hnsw"]["M"] == 32
    rows = [json.loads(line) for line in (folder / "chunks.jsonl").read_text().splitlines()]
    docs = {
        json.loads(line)["doc_id"]: json.loads(line) for line in (folder / "documents.jsonl").read_text().splitlines()
    }
    assert rows and all(docs[r["doc_id"]]["text"][r["start"] : r["end"]] == r["text"] for r in rows)
    assert entry["chunks"] == len(rows)
    assert list_indexes(settings.index_root) == ["default"]


def test_opening_with_another_embedder_fails_clearly(pipeline, settings) -> None:
    pipeline.ingest([settings.corpus])
    with pytest.raises(IndexMismatch, match=r"built with embedders hash, but use,e5 were asked for"):
        open_index(settings.index_dir, ("use", "e5"))
    with pytest.raises(IndexNotFound):
        open_index(settings.index_root / "nope", ("hash",))


BUILD = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    import rag.store
    from rag.embed import HashEmbedder
    from rag.pipeline import Pipeline
    from rag.settings import Settings

    root, corpus, mode, flag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])

    class Slow(HashEmbedder):
        def encode_documents(self, texts):
            flag.write_text("embedding")
            time.sleep(0.2)
            return super().encode_documents(texts)

    if mode == "swap":  # die between the two renames of the folder swap
        real = os.rename
        calls = []
        def rename(a, b):
            real(a, b)
            calls.append(a)
            if len(calls) == 1:
                flag.write_text("swapping")
                time.sleep(60)
        rag.store.os.rename = rename
    s = Settings(corpus=corpus, index_root=root, embedders=("hash",))
    Pipeline(s, {"hash": Slow() if mode == "embed" else HashEmbedder()}).ingest([corpus], rebuild=True)
    """
)


@pytest.mark.parametrize("mode,stage", [("embed", "embedding"), ("swap", "swapping")])
def test_killed_rebuild_leaves_previous_index_usable(pipeline, settings, tmp_path, mode, stage) -> None:
    pipeline.ingest([settings.corpus])
    before = open_index(settings.index_dir, ("hash",))
    flag = tmp_path / "flag"
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(settings.index_root), str(settings.corpus), mode, str(flag)],
        cwd=ROOT,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while not (flag.exists() and flag.read_text() == stage):
        assert proc.poll() is None and time.time() < deadline, "build ended before it could be killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    after = open_index(settings.index_dir, ("hash",))
    assert [c.text for c in after.chunks] == [c.text for c in before.chunks]
    assert list_indexes(settings.index_root) == ["default"]
    # and the next build goes through
    pipeline.ingest([settings.corpus], rebuild=True)
    assert len(open_index(settings.index_dir, ("hash",)).chunks) == len(before.chunks)


def _version(settings) -> str:  # type: ignore[no-untyped-def]
    return json.loads((settings.index_dir / "manifest.json").read_text())["version"]


def test_an_old_version_a_reader_holds_is_kept_until_the_next_write(pipeline, settings, corpus) -> None:
    import fcntl

    pipeline.ingest([corpus])
    first = _version(settings)
    versions = settings.index_dir / "versions"
    fd = os.open(versions / first / "manifest.json", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # a reader in the middle of opening it
    try:
        (corpus / "news-en.txt").write_text("CHANGED\n\nThe seminar moved to Xi'an.\n", "utf-8")
        pipeline.ingest([corpus])
        second = _version(settings)
        assert second != first and sorted(p.name for p in versions.iterdir()) == [first, second]
    finally:
        os.close(fd)
    (corpus / "news-en.txt").write_text("CHANGED AGAIN\n\nThe seminar moved to Lhasa.\n", "utf-8")
    pipeline.ingest([corpus])
    assert [p.name for p in versions.iterdir()] == [_version(settings)]
    assert int(_version(settings)[1:7]) > int(second[1:7])  # (a merge of segments may add a version)


def test_stale_temp_copies_are_removed_at_the_next_write(pipeline, settings, corpus) -> None:
    pipeline.ingest([corpus])
    versions = settings.index_dir / "versions"
    (versions / ".tmp-deadbeef").mkdir()  # a build killed half-way
    (versions / ".tmp-deadbeef" / "chunks.jsonl").write_text("{}\n")
    (versions / "v000009-orphan0").mkdir()  # a build killed after its rename, before the pointer moved
    (settings.index_root / ".old-default-12345678").mkdir()  # an interrupted swap of the old layout
    (settings.index_dir / "manifest.json.tmp-1234").write_text("{")
    assert len(open_index(settings.index_dir, ("hash",)).chunks) > 0  # readers ignore all of it
    pipeline.remove(["news-en"])
    assert [p.name for p in versions.iterdir()] == [_version(settings)]
    assert sorted(p.name for p in settings.index_root.iterdir()) == [".default.lock", "default"]
    assert sorted(p.name for p in settings.index_dir.iterdir()) == ["manifest.json", "segments", "versions"]


def test_a_pointer_to_a_missing_version_is_reported_as_damaged(pipeline, settings) -> None:
    from rag.store import StoreError

    pipeline.ingest([settings.corpus])
    manifest = settings.index_dir / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "version": "v000042-gone0000"}))
    with pytest.raises(StoreError, match="is damaged: its version v000042-gone0000 is missing"):
        open_index(settings.index_dir, ("hash",))


def _as_format_3(index_dir: Path, out: Path, versioned: bool = False) -> None:
    """Write the current (one-segment) index as an index of format 3 into `out`: every file in one folder,
    vectors as FAISS flat files, BM25 as npz (lexical format 1); with `versioned`, in `out/versions/<v>/`
    behind a pointer, else (the layout before versions) beside the manifest."""
    import shutil

    import faiss
    import numpy as np

    top = json.loads((index_dir / "manifest.json").read_text())
    [entry] = top.pop("segments")
    seg = index_dir / "segments" / entry["name"]
    version = top.pop("version")
    top.pop("search", None)
    top.pop("merge", None)
    top["format_version"] = 3
    files = out / "versions" / version if versioned else out
    files.mkdir(parents=True, exist_ok=True)
    for name in ("documents.jsonl", "chunks.jsonl", "sentences.jsonl", "sentences-hash.npy"):
        shutil.copy(seg / name, files / name)
    vectors = np.load(seg / "vectors-hash.npy")
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    faiss.write_index(flat, str(files / "vectors-hash.faiss"))
    (files / "lexical").mkdir()
    lex_manifest = json.loads((seg / "lexical" / "manifest.json").read_text())
    (files / "lexical" / "manifest.json").write_text(json.dumps({**lex_manifest, "format": 1}))
    for vocab in (seg / "lexical").glob("*.vocab.json"):
        stem = vocab.name.removesuffix(".vocab.json")
        shutil.copy(vocab, files / "lexical" / vocab.name)
        arrays = {k: np.load(seg / "lexical" / f"{stem}.{k}.npy") for k in ("data", "indices", "indptr", "shape")}
        np.savez(files / "lexical" / f"{stem}.npz", **arrays)
    if versioned:
        (files / "manifest.json").write_text(json.dumps({**top, "version": version}))
        top["version"] = version
    (out / "manifest.json").write_text(json.dumps(top))


def test_an_index_of_format_3_opens_as_it_is_and_becomes_a_segment_on_write(pipeline, settings, corpus) -> None:
    import shutil

    pipeline.ingest([corpus])
    before = open_index(settings.index_dir, ("hash",))
    old = settings.index_root / "old"
    _as_format_3(settings.index_dir, old, versioned=True)
    shutil.rmtree(settings.index_dir)
    old.rename(settings.index_dir)
    opened = open_index(settings.index_dir, ("hash",))
    assert opened.manifest.format_version == 3 and not opened.parts
    assert [c.chunk_id for c in opened.chunks] == [c.chunk_id for c in before.chunks]
    assert opened.lexical.scores("seminar 研讨会").tolist() == before.lexical.scores("seminar 研讨会").tolist()
    (corpus / "extra.txt").write_text("EXTRA\n\nA third newsletter.\n", "utf-8")
    assert pipeline.ingest([corpus]).added == ("extra",)  # the first write migrates: one segment, all of it
    after = open_index(settings.index_dir, ("hash",))
    assert after.manifest.format_version == 4 and len(after.parts) == 1
    assert sorted(after.documents) == ["extra", "news-en", "news-zh"]


def test_an_index_of_the_layout_before_versions_opens_and_moves_on_write(pipeline, settings, corpus) -> None:
    import shutil

    pipeline.ingest([corpus])
    folder = settings.index_dir
    _as_format_3(folder, settings.index_root / "old")  # the old layout: files beside manifest.json, no version
    shutil.rmtree(folder)
    (settings.index_root / "old").rename(folder)
    assert sorted(open_index(folder, ("hash",)).documents) == ["news-en", "news-zh"]
    (corpus / "extra.txt").write_text("EXTRA\n\nA third newsletter.\n", "utf-8")
    assert pipeline.ingest([corpus]).added == ("extra",)
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "segments", "versions"]
    assert sorted(open_index(folder, ("hash",)).documents) == ["extra", "news-en", "news-zh"]


def test_a_swap_of_the_old_layout_killed_between_its_renames_is_finished_by_the_next_write(
    pipeline, settings, corpus
) -> None:
    import shutil

    pipeline.ingest([corpus])
    folder, root = settings.index_dir, settings.index_root
    old = root / ".old-default-abcdef12"  # the old layout's swap, killed after its first rename
    _as_format_3(folder, old)
    shutil.rmtree(folder)
    other = root / ".old-default-x-12345678"  # belongs to an index named "default-x": not ours to touch
    other.mkdir()
    (corpus / "extra.txt").write_text("EXTRA\n\nA third newsletter.\n", "utf-8")
    assert pipeline.ingest([corpus / "extra.txt"]).added == ("extra",)
    assert sorted(open_index(folder, ("hash",)).documents) == ["extra", "news-en", "news-zh"]  # nothing lost
    assert not old.exists() and other.exists()
