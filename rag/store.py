"""The index folder: plain files (manifest, documents, chunks, FAISS vectors, BM25) written atomically."""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import json
import os
import re
import shutil
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
MANIFEST = "manifest.json"
VERSIONS = "versions"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
OPEN_ATTEMPTS = 50
# What an index folder held before versions: read as they are, deleted at the first write.
LEGACY_FILES = ("documents.jsonl", "chunks.jsonl", "sentences.jsonl", "lexical", "lexical-sentences")


class StoreError(RuntimeError):
    """An index that is missing, corrupt, or built with other settings than asked for."""


class IndexNotFound(StoreError):
    pass


class IndexMismatch(StoreError):
    pass


class FormatOutdated(IndexMismatch):
    """An index written by an older version of this program: its documents can be re-indexed as they are."""


def stored_documents(folder: Path) -> list[Document]:
    """The cleaned documents an index holds, readable whatever its format version or embedders (to rebuild
    it); [] when there is no index. Call it holding `write_lock(folder)`: the version it reads stays put.
    """
    pointer = _read_pointer(folder)
    if not pointer and not (folder / "documents.jsonl").exists():
        return []
    version = pointer.get("version")
    files = folder / VERSIONS / str(version) if version else folder
    try:
        return [_doc_from_json(j) for j in _read_jsonl(files / "documents.jsonl")]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"index {folder.name!r} is damaged: documents.jsonl: {_short(exc)}") from exc


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
    answer_model: dict[str, Any] = field(default_factory=dict)  # the answer model the index was built beside
    backend: dict[str, Any] = field(default_factory=dict)  # where the vectors live; {} = files here (rag/backend.py)

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
            answer_model=dict(d.get("answer_model", {})),
            backend=dict(d.get("backend", {})),
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
    version: str = ""  # the version folder it was read from ("" for the layout before versions)

    def __post_init__(self) -> None:
        if not self.faiss:
            self.faiss = {name: _flat_index(v) for name, v in self.vectors.items()}
        if not self.chunk_sentences:
            self.chunk_sentences = _map_chunk_sentences(self.chunks, self.sentences)

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
            out.setdefault(d.edition_key, []).append(doc_id)
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
    """Sentence rows overlapping each chunk; a binary search per chunk (a document's sentences are in order)."""
    by_doc: dict[str, list[int]] = {}
    for row, (doc_id, _s, _e) in enumerate(sentences):
        by_doc.setdefault(doc_id, []).append(row)
    ends = {d: [sentences[r][2] for r in rows] for d, rows in by_doc.items()}
    out = []
    for c in chunks:
        rows = by_doc.get(c.doc_id, [])
        i = bisect.bisect_right(ends.get(c.doc_id, []), c.start)  # first sentence ending after the chunk starts
        picked = []
        while i < len(rows) and sentences[rows[i]][1] < c.end:
            if sentences[rows[i]][2] > c.start:
                picked.append(rows[i])
            i += 1
        out.append(picked)
    return out


def safe_name(channel: str) -> str:
    """A file-system-safe stem for a channel id such as `st:/models/bge-m3`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", channel).strip("_") or "channel"


def write_index(index: Index) -> None:
    """Write `index` as a new version of `index.folder` and point its manifest at it. Hold `write_lock`.

    Layout: `<folder>/versions/<version>/` holds the files of one version (never changed once named);
    `<folder>/manifest.json` names the current version and is replaced atomically (rename), so a reader sees
    either the old version or the new one, whole. A build killed half-way leaves a `versions/.tmp-*` folder,
    removed by the next write; old versions are deleted once no reader holds them (see `open_index`).
    """
    import faiss

    folder = index.folder
    versions = folder / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    current = _read_pointer(folder)
    clean_stale(folder)
    tmp = versions / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}"
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
        seq = _version_seq(current.get("version", "")) + 1 if current else 1
        name = f"v{seq:06d}-{uuid.uuid4().hex[:8]}"
        manifest = {**index.manifest.to_json(), "version": name}
        # The manifest goes last: a version folder without one is never opened.
        _write_json(tmp / MANIFEST, manifest)
        _fsync_dir(tmp)
        os.rename(tmp, versions / name)
        _fsync_dir(versions)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_json(folder / MANIFEST, manifest)  # the switch: one atomic rename
    clean_stale(folder)


def clean_stale(folder: Path) -> list[str]:
    """Delete what no reader needs: temp builds, versions other than the current one that no reader holds,
    files of the pre-versions layout. Only call it holding `write_lock(folder)`. Returns what was deleted.
    """
    deleted: list[str] = []
    current = _read_pointer(folder).get("version", "")
    versions = folder / VERSIONS
    if versions.is_dir():
        for p in sorted(versions.iterdir()):
            if p.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(p, ignore_errors=True)
                deleted.append(p.name)
            elif p.name != current and current and _delete_unheld(p):
                deleted.append(p.name)
    if current:  # an index written before versions existed: its files sit beside the pointer
        legacy = [folder / n for n in LEGACY_FILES] + [*folder.glob("vectors-*.faiss"), *folder.glob("sentences-*.npy")]
        for p in legacy:
            name = p.name
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
                deleted.append(name)
            elif p.exists():
                p.unlink()
                deleted.append(name)
    if (folder / MANIFEST).exists():  # folders of the old layout's swap, once they can't be needed
        for p in _legacy_swap_folders(folder):
            shutil.rmtree(p, ignore_errors=True)
            deleted.append(p.name)
    for p in folder.glob(f"{MANIFEST}.tmp-*"):
        p.unlink(missing_ok=True)
        deleted.append(p.name)
    return deleted


def recover_legacy_swap(folder: Path) -> bool:
    """Finish what a writer of the old layout (folder swapped by two renames) left when it was killed between
    them: the index folder missing, the previous one under `.old-<name>-<hex>`. Hold `write_lock(folder)`.
    """
    if (folder / MANIFEST).exists():
        return False
    olds = [p for p in _legacy_swap_folders(folder) if p.name.startswith(".old-") and (p / MANIFEST).exists()]
    if not olds:
        return False
    newest = max(olds, key=lambda p: p.stat().st_mtime)
    if folder.exists():
        shutil.rmtree(folder)
    os.rename(newest, folder)
    return True


def _legacy_swap_folders(folder: Path) -> list[Path]:
    """`.old-<name>-<8 hex>` and `.tmp-<name>-<8 hex>` beside the folder (not those of `<name>-x`)."""
    pattern = re.compile(rf"\.(old|tmp)-{re.escape(folder.name)}-[0-9a-f]{{8}}")
    parent = folder.parent
    return [p for p in parent.iterdir() if pattern.fullmatch(p.name)] if parent.is_dir() else []


def _delete_unheld(version: Path) -> bool:
    """Delete an old version folder unless a reader holds its lease (a shared flock on its manifest)."""
    lease = version / MANIFEST
    try:
        fd = os.open(lease, os.O_RDONLY)
    except FileNotFoundError:  # never finished: nobody can be reading it
        shutil.rmtree(version, ignore_errors=True)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a reader is opening it: the next write deletes it
        # Renamed first, so a reader arriving now finds no folder and re-reads the pointer.
        trash = version.parent / f"{TRASH_PREFIX}{version.name}"
        os.rename(version, trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        os.close(fd)


def open_index(
    folder: Path, embedders: tuple[str, ...] | None = None, lexical: bool | None = None, vectors: bool = True
) -> Index:
    """Open the current version of an index; refuse one built with other embedders than `embedders`.

    `vectors=False` reads everything but the vector files (an index whose vectors live in a search engine,
    `rag.milvus_store`): the Index then has no vectors.

    A reader never takes the write lock: it reads the pointer, holds a lease on the version it names while
    it loads the files, and starts again if a writer deleted that version meanwhile (an old one).
    """
    for _attempt in range(OPEN_ATTEMPTS):
        pointer = _read_manifest(folder)
        manifest = _check(folder, pointer, embedders, lexical)
        version = pointer.get("version")
        if not version:  # the layout before versions: files beside the manifest
            try:
                return _load(folder, folder, manifest, "", vectors)
            except _Vanished:
                continue
        vfolder = folder / VERSIONS / str(version)
        try:
            fd = os.open(vfolder / MANIFEST, os.O_RDONLY)
        except FileNotFoundError:
            if _read_pointer(folder).get("version") == version:
                raise StoreError(f"index {folder.name!r} is damaged: its version {version} is missing") from None
            continue  # deleted after we read the pointer: a newer version is current
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_nlink == 0:
                continue  # deleted while we waited for the lease
            return _load(folder, vfolder, manifest, str(version), vectors)
        except _Vanished:
            continue
        finally:
            os.close(fd)
    raise StoreError(f"index {folder.name!r} changed {OPEN_ATTEMPTS} times while it was being opened; try again")


def current_version(folder: Path) -> tuple[int, int] | None:
    """A cheap stamp of the current version (changes with every write), or None when there is no index."""
    try:
        st = os.stat(folder / MANIFEST)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


class _Vanished(Exception):
    """A file of the version being opened disappeared (the version was replaced and deleted)."""


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise IndexNotFound(f"no index at {folder}") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"index {folder.name!r} is damaged: manifest.json: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"index {folder.name!r} is damaged: manifest.json is not an object")
    return data


def _read_pointer(folder: Path) -> dict[str, Any]:
    """The current manifest, or {} when there is none or it can't be read (a writer then replaces it)."""
    try:
        return _read_manifest(folder)
    except StoreError:
        return {}


def _check(folder: Path, data: dict[str, Any], embedders: tuple[str, ...] | None, lexical: bool | None) -> Manifest:
    try:
        manifest = Manifest.from_json(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StoreError(f"index {folder.name!r} is damaged: manifest.json: {exc!r}") from exc
    if manifest.format_version != FORMAT_VERSION:
        raise FormatOutdated(
            f"index {folder.name} has format version {manifest.format_version}, this program reads {FORMAT_VERSION}"
        )
    if embedders is not None and tuple(embedders) != manifest.embedders:
        raise IndexMismatch(
            f"index {folder.name!r} was built with embedders {','.join(manifest.embedders) or 'none'}, "
            f"but {','.join(embedders) or 'none'} were asked for. Use the same --embedders, another "
            f"--index, or re-index its newsletters with `newsletter-qa ingest --rebuild` (keeps them all)."
        )
    if lexical and not manifest.lexical:
        raise IndexMismatch(
            f"index {folder.name!r} was built without the lexical channel; re-index its newsletters with "
            "`newsletter-qa ingest --rebuild` (keeps them all)"
        )
    return manifest


def _load(folder: Path, files: Path, manifest: Manifest, version: str, with_vectors: bool = True) -> Index:
    """Read every file of one version; a missing file means the version went away (`_Vanished`)."""
    import faiss

    current = "?"
    try:
        current = "documents.jsonl"
        documents = {d.doc_id: d for d in map(_doc_from_json, _read_jsonl(files / current))}
        current = "chunks.jsonl"
        chunks = [_chunk_from_json(j) for j in _read_jsonl(files / current)]
        current = "sentences.jsonl"
        sentences = [(j["doc_id"], j["start"], j["end"]) for j in _read_jsonl(files / current)]
        vectors, flat, sentence_vectors = {}, {}, {}
        for channel in manifest.embedders if with_vectors else ():
            current = f"vectors-{safe_name(channel)}.faiss"
            if not (files / current).exists():
                raise FileNotFoundError(files / current)
            fi = faiss.read_index(str(files / current))
            flat[channel] = fi
            vectors[channel] = fi.reconstruct_n(0, fi.ntotal) if fi.ntotal else np.zeros((0, fi.d), np.float32)
            current = f"sentences-{safe_name(channel)}.npy"
            sentence_vectors[channel] = np.load(files / current)
        lex = sent_lex = None
        if manifest.lexical:
            from rag.lexical import LexicalIndex

            current = "lexical"
            lex = LexicalIndex.load(files / current)
            current = "lexical-sentences"  # written by indexes before the answer model; no longer needed
            if (files / current).exists():
                sent_lex = LexicalIndex.load(files / current)
    except FileNotFoundError as exc:
        if version and not files.exists():
            raise _Vanished(str(exc)) from exc
        if not version and not (folder / MANIFEST).exists():
            raise _Vanished(str(exc)) from exc
        raise StoreError(f"index {folder.name!r} is damaged: {current} is missing") from exc
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise StoreError(f"index {folder.name!r} is damaged: {current}: {_short(exc)}") from exc
    for ch, v in vectors.items():
        if len(v) != len(chunks) or len(sentence_vectors[ch]) != len(sentences):
            raise StoreError(f"index {folder.name!r} is inconsistent: {ch} vectors do not match rows")
    index = Index(folder, manifest, documents, chunks, vectors, sentences, sentence_vectors, lex, sent_lex, flat)
    index.version = version
    return index


def _short(exc: BaseException, limit: int = 200) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def list_indexes(root: Path) -> list[str]:
    """Names of the indexes under `root` (damaged ones included: opening them says what is wrong)."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / MANIFEST).exists())


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """One writer per index at a time (CLI, UI admin panel, tests); readers never take it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _version_seq(name: str) -> int:
    m = re.match(r"v(\d+)-", name)
    return int(m.group(1)) if m else 0


def _replace_json(path: Path, obj: Any) -> None:
    """Write JSON beside `path`, fsync it, and rename it over `path` (atomic on POSIX)."""
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        _write_json(tmp, obj)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


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
