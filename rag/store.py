"""The index folder: plain files (manifest, documents, chunks, FAISS vectors, BM25) written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag.scope import Corpus
from rag.types import Chunk, Document, Meta, Section

FORMAT_VERSION = 3  # 2: sentence-level BM25 (lexical-sentences/); 3: pinyin of Chinese names in BM25


class StoreError(RuntimeError):
    """An index that is missing, corrupt, or built with other settings than asked for."""


class IndexNotFound(StoreError):
    pass


class IndexMismatch(StoreError):
    pass


class FormatOutdated(IndexMismatch):
    """An index written by an older version of this program: its documents can be re-indexed as they are."""


def stored_documents(folder: Path) -> list[Document]:
    """The cleaned documents an index holds, readable whatever its format version (to rebuild it)."""
    return [_doc_from_json(j) for j in _read_jsonl(folder / "documents.jsonl")]


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an index was built with; an index is only opened with the same embedders and chunker."""

    embedders: tuple[str, ...]
    dims: dict[str, int]
    lexical: bool
    chunker: dict[str, Any]
    documents: dict[str, str]  # doc_id -> content hash
    format_version: int = FORMAT_VERSION
    created: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["embedders"] = list(self.embedders)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            embedders=tuple(d["embedders"]),
            dims={k: int(v) for k, v in d["dims"].items()},
            lexical=bool(d["lexical"]),
            chunker=dict(d["chunker"]),
            documents=dict(d["documents"]),
            format_version=int(d.get("format_version", 0)),
            created=d.get("created", ""),
            counts=dict(d.get("counts", {})),
        )


@dataclass
class Index:
    """An opened index, all in memory: rows of `chunks` match rows of each channel's vectors."""

    folder: Path
    manifest: Manifest
    documents: dict[str, Document]
    chunks: list[Chunk]
    vectors: dict[str, np.ndarray]  # channel -> (n_chunks, dim), L2-normalised
    sentences: list[tuple[str, int, int]]  # (doc_id, start, end) of every sentence
    sentence_vectors: dict[str, np.ndarray]  # channel -> (n_sentences, dim)
    lexical: Any = None  # rag.lexical.LexicalIndex over chunks | None
    sentence_lexical: Any = None  # rag.lexical.LexicalIndex over sentences | None
    faiss: dict[str, Any] = field(default_factory=dict)
    chunk_sentences: list[list[int]] = field(default_factory=list)  # chunk row -> sentence rows

    def __post_init__(self) -> None:
        if not self.faiss:
            self.faiss = {name: _flat_index(v) for name, v in self.vectors.items()}
        if not self.chunk_sentences:
            self.chunk_sentences = _map_chunk_sentences(self.chunks, self.sentences)

    @cached_property
    def chunk_rows(self) -> dict[str, int]:
        """Chunk id → row, built once per opened index."""
        return {c.chunk_id: i for i, c in enumerate(self.chunks)}

    @cached_property
    def doc_sentence_rows(self) -> dict[str, list[int]]:
        """Document id → its sentence rows, in text order."""
        out: dict[str, list[int]] = {}
        for row, (doc_id, _s, _e) in enumerate(self.sentences):
            out.setdefault(doc_id, []).append(row)
        return out

    @cached_property
    def editions(self) -> dict[str, list[str]]:
        """Edition key (`meta.edition_of`, else title and issue) → the ids of the documents sharing it."""
        out: dict[str, list[str]] = {}
        for doc_id, d in self.documents.items():
            out.setdefault(d.meta.edition_of or f"{d.meta.title}|{d.meta.issue}", []).append(doc_id)
        return out

    @cached_property
    def corpus(self) -> Corpus:
        """All documents' text, for checking whether a question names something the newsletters mention."""
        return Corpus.of((d.text, d.language) for d in self.documents.values())


def _flat_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def _map_chunk_sentences(chunks: list[Chunk], sentences: list[tuple[str, int, int]]) -> list[list[int]]:
    by_doc: dict[str, list[int]] = {}
    for row, (doc_id, _s, _e) in enumerate(sentences):
        by_doc.setdefault(doc_id, []).append(row)
    out = []
    for c in chunks:
        rows = by_doc.get(c.doc_id, [])
        out.append([r for r in rows if sentences[r][1] < c.end and sentences[r][2] > c.start])
    return out


def safe_name(channel: str) -> str:
    """A file-system-safe stem for a channel id such as `st:/models/bge-m3`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", channel).strip("_") or "channel"


def write_index(index: Index) -> None:
    """Write `index` to `index.folder` atomically: build aside, then swap folders by rename.

    A build killed half-way leaves only a `.tmp-*` folder behind; the previous index stays usable.
    """
    import faiss

    folder = index.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_jsonl(tmp / "documents.jsonl", (_doc_to_json(d) for d in index.documents.values()))
        _write_jsonl(tmp / "chunks.jsonl", (_chunk_to_json(c) for c in index.chunks))
        _write_jsonl(tmp / "sentences.jsonl", ({"doc_id": d, "start": s, "end": e} for d, s, e in index.sentences))
        for channel, vectors in index.vectors.items():
            faiss.write_index(_flat_index(vectors), str(tmp / f"vectors-{safe_name(channel)}.faiss"))
        for channel, vectors in index.sentence_vectors.items():
            np.save(tmp / f"sentences-{safe_name(channel)}.npy", vectors.astype(np.float32))
        if index.lexical is not None:
            index.lexical.save(tmp / "lexical")
        if index.sentence_lexical is not None:
            index.sentence_lexical.save(tmp / "lexical-sentences")
        # The manifest goes last: a folder without one is never opened.
        _write_json(tmp / "manifest.json", index.manifest.to_json())
        _fsync_dir(tmp)
        _swap(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def open_index(folder: Path, embedders: tuple[str, ...] | None = None, lexical: bool | None = None) -> Index:
    """Open an index folder; refuse one built with other embedders than `embedders`."""
    _recover(folder)
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise IndexNotFound(f"no index at {folder}")
    try:
        manifest = Manifest.from_json(json.loads(manifest_path.read_text("utf-8")))
    except (ValueError, KeyError) as exc:
        raise StoreError(f"index {folder} has a corrupt manifest.json: {exc}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise FormatOutdated(
            f"index {folder.name} has format version {manifest.format_version}, this program reads {FORMAT_VERSION}"
        )
    if embedders is not None and tuple(embedders) != manifest.embedders:
        raise IndexMismatch(
            f"index {folder.name!r} was built with embedders {','.join(manifest.embedders) or 'none'}, "
            f"but {','.join(embedders) or 'none'} were asked for. Use the same --embedders, another "
            f"--index, or rebuild it with `newsletter-qa ingest --rebuild`."
        )
    if lexical and not manifest.lexical:
        raise IndexMismatch(f"index {folder.name!r} was built without the lexical channel; rebuild it")
    import faiss

    documents = {d.doc_id: d for d in map(_doc_from_json, _read_jsonl(folder / "documents.jsonl"))}
    chunks = [_chunk_from_json(j) for j in _read_jsonl(folder / "chunks.jsonl")]
    sentences = [(j["doc_id"], j["start"], j["end"]) for j in _read_jsonl(folder / "sentences.jsonl")]
    vectors, flat = {}, {}
    for channel in manifest.embedders:
        fi = faiss.read_index(str(folder / f"vectors-{safe_name(channel)}.faiss"))
        flat[channel] = fi
        vectors[channel] = fi.reconstruct_n(0, fi.ntotal) if fi.ntotal else np.zeros((0, fi.d), np.float32)
    sentence_vectors = {ch: np.load(folder / f"sentences-{safe_name(ch)}.npy") for ch in manifest.embedders}
    lex = sent_lex = None
    if manifest.lexical:
        from rag.lexical import LexicalIndex

        lex = LexicalIndex.load(folder / "lexical")
        sent_lex = LexicalIndex.load(folder / "lexical-sentences")
    for ch, v in vectors.items():
        if len(v) != len(chunks) or len(sentence_vectors[ch]) != len(sentences):
            raise StoreError(f"index {folder.name!r} is inconsistent: {ch} vectors do not match rows")
    return Index(folder, manifest, documents, chunks, vectors, sentences, sentence_vectors, lex, sent_lex, flat)


def list_indexes(root: Path) -> list[str]:
    """Names of the indexes under `root`."""
    if not root.is_dir():
        return []
    for p in root.iterdir():
        if p.name.startswith(".old-"):
            _recover(root / p.name[5:].rsplit("-", 1)[0])
    return sorted(p.name for p in root.iterdir() if (p / "manifest.json").exists() and not p.name.startswith("."))


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """One writer per index at a time (CLI, UI admin panel, tests)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _swap(tmp: Path, folder: Path) -> None:
    old = folder.parent / f".old-{folder.name}-{uuid.uuid4().hex[:8]}"
    if folder.exists():
        os.rename(folder, old)
    os.rename(tmp, folder)  # between the two renames `_recover` restores the old folder
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
    for stale in folder.parent.glob(f".tmp-{folder.name}-*"):
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


def _recover(folder: Path) -> None:
    """If a swap was interrupted between its two renames, put the previous index back."""
    if (folder / "manifest.json").exists() or not folder.parent.is_dir():
        return
    olds = sorted(folder.parent.glob(f".old-{folder.name}-*"), key=lambda p: p.stat().st_mtime)
    for old in reversed(olds):
        if (old / "manifest.json").exists():
            if folder.exists():
                shutil.rmtree(folder)
            os.rename(old, folder)
            return


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=2)
        fh.flush()
        os.fsync(fh.fileno())


def _write_jsonl(path: Path, rows: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _doc_to_json(d: Document) -> dict[str, Any]:
    return {
        "doc_id": d.doc_id,
        "language": d.language,
        "content_hash": d.content_hash,
        "path": d.path,
        "meta": asdict(d.meta),
        "sections": [asdict(s) for s in d.sections],
        "text": d.text,
        "links": [list(link) for link in d.links],
    }


def _doc_from_json(j: dict[str, Any]) -> Document:
    return Document(
        doc_id=j["doc_id"],
        text=j["text"],
        meta=Meta(**j["meta"]),
        language=j["language"],
        sections=tuple(Section(**s) for s in j["sections"]),
        content_hash=j["content_hash"],
        path=j.get("path", ""),
        links=tuple((str(text), str(url)) for text, url in j.get("links", ())),
    )


def _chunk_to_json(c: Chunk) -> dict[str, Any]:
    d = asdict(c)
    d["sentences"] = [list(s) for s in c.sentences]
    return d


def _chunk_from_json(j: dict[str, Any]) -> Chunk:
    j = dict(j)
    j["sentences"] = tuple(tuple(s) for s in j["sentences"])
    return Chunk(**j)
