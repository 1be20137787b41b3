"""The index folder: plain files (manifest, documents, chunks, FAISS vectors, BM25) written atomically."""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import functools
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from rag import segments as seglib
from rag.scope import Archive, Corpus
from rag.segments import SEGMENTS, Segment
from rag.types import Chunk, Document, Meta, Section

FORMAT_VERSION = 4  # 2: sentence-level BM25; 3: pinyin of Chinese names in BM25; 4: segments
READABLE_FORMATS = (3, 4)  # 3 opens as it is; the next write turns it into one segment (nothing re-embedded)
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
        if pointer.get("segments") is not None:
            out = []
            for entry in pointer["segments"]:
                deleted = set(entry.get("deleted", ()))
                docs = _read_jsonl(folder / SEGMENTS / entry["name"] / "documents.jsonl")
                out += [_doc_from_json(j) for j in docs if j["doc_id"] not in deleted]
            return out
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
    # Format 4: the segments of this version, in row order: {name, documents, chunks, sentences, dense ("flat" |
    # "hnsw"), deleted: [doc_ids tombstoned in it]}; and what chose each segment's dense index type.
    segments: tuple[dict[str, Any], ...] = ()
    search: dict[str, Any] = field(default_factory=dict)
    merge: dict[str, Any] = field(default_factory=dict)  # the merge policy the writer applied
    writer: dict[str, Any] = field(default_factory=dict)  # how the writer ran: {"nice": levels below its caller}
    backend: dict[str, Any] = field(default_factory=dict)  # where the vectors live; {} = files here (rag/backend.py)
    sentence_vectors: str = "encoded"  # Settings.sentence_vectors the vectors were made with (rag/pooling.py)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["embedders"] = list(self.embedders)
        d["segments"] = [dict(e) for e in self.segments]
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
            segments=tuple(dict(e) for e in d.get("segments", ())),
            search=dict(d.get("search", {})),
            merge=dict(d.get("merge", {})),
            writer=dict(d.get("writer", {})),
            backend=dict(d.get("backend", {})),
            sentence_vectors=str(d.get("sentence_vectors", "encoded")),
        )

    def dense_types(self) -> dict[str, int]:
        """How many segments each dense index type serves ({"flat": 3, "hnsw": 1})."""
        out: dict[str, int] = {}
        for e in self.segments:
            out[e.get("dense", "flat")] = out.get(e.get("dense", "flat"), 0) + 1
        return out


_LANGUAGE_TAG = re.compile(r"[._-](?:en|eng|zh|cn|chs|cht|zh[-_](?:hans|hant|cn|tw|hk))$", re.IGNORECASE)


def edition_groups(documents: Mapping[str, Document]) -> dict[str, str]:
    """Document id → its edition group's key (the smallest id of the group): ids joined by a shared
    `Document.edition_key` (metadata) or by a shared file name once a final language tag is cut off."""
    parent = {d: d for d in documents}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[str, str] = {}
    for doc_id in sorted(documents):
        key = documents[doc_id].edition_key
        # ("|": no edition_of, no title, no issue: that says nothing about which documents go together)
        for k in (f"meta:{key}" if key != "|" else "", f"file:{_LANGUAGE_TAG.sub('', doc_id)}"):
            if not k:
                continue
            a, b = find(first.setdefault(k, doc_id)), find(doc_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {doc_id: find(doc_id) for doc_id in documents}


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
    faiss: dict[str, Any] = field(default_factory=dict)  # format 3: the flat FAISS index read per channel
    chunk_sentences: list[list[int]] = field(default_factory=list)  # chunk row -> sentence rows
    version: str = ""  # the version folder it was read from ("" for the layout before versions)
    # A segmented index (format 4): its segments in row order, and which rows are live (None: all). Rows of
    # documents deleted or replaced since their segment was written stay in the arrays, masked out.
    parts: list[Part] = field(default_factory=list)
    live: np.ndarray | None = None  # chunk rows
    sentence_live: np.ndarray | None = None  # sentence rows

    def __post_init__(self) -> None:
        if not self.chunk_sentences:
            self.chunk_sentences = seglib.map_chunk_sentences(self.chunks, self.sentences)

    @cached_property
    def doc_sentence_rows(self) -> Mapping[str, list[int]]:
        """Document id → its (live) sentence rows, in text order."""
        if self.parts:  # from each segment's own map, computed once per segment
            return _DocRows(self.parts)
        out: dict[str, list[int]] = {}
        live = self.sentence_live
        for row, (doc_id, _s, _e) in enumerate(self.sentences):
            if live is None or live[row]:
                out.setdefault(doc_id, []).append(row)
        return out

    @cached_property
    def edition_keys(self) -> dict[str, str]:
        """Document id → the key the editions of its issue share (the first of their ids). Documents are editions
        of one issue when they share `meta.edition_of`, or title and issue, or a file name but for a final
        language tag ("report-7" and "report-7.zh", "report-7.en" and "report-7.zh": no metadata needed)."""
        return edition_groups(self.documents)

    @cached_property
    def editions(self) -> dict[str, list[str]]:
        """Edition key (`edition_keys`) → the ids of the documents sharing it."""
        out: dict[str, list[str]] = {}
        for doc_id, key in self.edition_keys.items():
            out.setdefault(key, []).append(doc_id)
        return out

    @cached_property
    def corpus(self) -> Archive:
        """All documents' text, for checking whether a question names something the newsletters mention."""
        if self.parts:  # each segment's postings are built once per process, not per index version
            from rag.mentions import Mentions

            pieces = []
            for p in self.parts:
                dead = None
                if p.deleted:
                    dead = np.fromiter((d in p.deleted for d in p.segment.documents), bool, len(p.segment.documents))
                pieces.append((p.segment.mentions(), dead))
            return Mentions(pieces, (d.language for d in self.documents.values()))
        return Corpus.of((d.text, d.language) for d in self.documents.values())


@dataclass(frozen=True)
class Part:
    """One segment of an opened index: where its rows start, and which of them are live (None: all)."""

    segment: Segment
    chunk_offset: int
    sentence_offset: int
    deleted: frozenset[str] = frozenset()
    live: np.ndarray | None = None
    sentence_live: np.ndarray | None = None


class _DocRows(Mapping[str, list[int]]):
    """Document → its sentence rows in a segmented index: the segment that holds it live, shifted."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self.where = {d: p for p in parts for d in p.segment.documents if d not in p.deleted}

    def __getitem__(self, doc_id: str) -> list[int]:
        p = self.where[doc_id]
        rows = p.segment.derived("doc_sentences", lambda seg: seg.doc_rows()[1])
        return [p.sentence_offset + r for r in rows.get(doc_id, [])]

    def __iter__(self) -> Iterator[str]:
        return iter(self.where)

    def __len__(self) -> int:
        return len(self.where)


class OffsetLists:
    """Per-segment chunk → sentence-row lists read as one list over the whole index (rows shifted)."""

    def __init__(self, parts: list[Part]) -> None:
        self.parts = parts
        self.starts = [p.chunk_offset for p in parts]
        self.n = sum(len(p.segment.chunks) for p in parts)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, row: int) -> list[int]:
        row = int(row)
        if not 0 <= row < self.n:
            raise IndexError(row)
        p = self.parts[bisect.bisect_right(self.starts, row) - 1]
        return [p.sentence_offset + s for s in p.segment.chunk_sentences[row - p.chunk_offset]]

    def __iter__(self) -> Iterator[list[int]]:
        for p in self.parts:
            for rows in p.segment.chunk_sentences:
                yield [p.sentence_offset + s for s in rows]


def assemble(folder: Path, manifest: Manifest, pieces: list[tuple[Segment, frozenset[str]]], version: str) -> Index:
    """One Index over segments (each with its tombstoned documents): lists are joined, arrays stacked
    without copying, BM25 read across segments."""
    from rag.lexical import SegmentedLexical
    from rag.tables import Joined

    documents: dict[str, Document] = {}
    parts: list[Part] = []
    n_chunks = n_sentences = 0
    for seg, deleted in pieces:
        live = slive = None
        if deleted:
            alive = np.array([d not in deleted for d in seg.documents] + [True], bool)  # (-1: not a document)
            chunk_docs, sentence_docs = seg.doc_positions()
            live, slive = alive[chunk_docs], alive[sentence_docs]
        parts.append(Part(seg, n_chunks, n_sentences, deleted, live, slive))
        documents.update((d, doc) for d, doc in seg.documents.items() if d not in deleted)
        n_chunks += len(seg.chunks)
        n_sentences += len(seg.sentences)
    # rows are made when read (rag.tables): one list over every segment would hold a Chunk per row
    chunks = Joined([p.segment.chunks for p in parts])
    sentences = Joined([p.segment.sentences for p in parts])
    dims = manifest.dims
    # (a backend that keeps vectors elsewhere opens segments without them: rag/backend.py)
    channels = [ch for ch in manifest.embedders if all(ch in p.segment.vectors for p in parts)]
    vectors = {ch: seglib.stack([p.segment.vectors[ch] for p in parts], dims[ch]) for ch in channels}
    sentence_vectors = {ch: seglib.stack([p.segment.sentence_vectors[ch] for p in parts], dims[ch]) for ch in channels}
    lexical = None
    if manifest.lexical:
        lexical = SegmentedLexical([(p.chunk_offset, p.segment.lexical, p.live) for p in parts])
    any_deleted = any(p.deleted for p in parts)
    live = (
        np.concatenate([np.ones(len(p.segment.chunks), bool) if p.live is None else p.live for p in parts])
        if any_deleted and parts
        else None
    )
    slive = (
        np.concatenate(
            [np.ones(len(p.segment.sentences), bool) if p.sentence_live is None else p.sentence_live for p in parts]
        )
        if any_deleted and parts
        else None
    )
    index = Index(
        folder,
        manifest,
        documents,
        chunks,  # type: ignore[arg-type]
        vectors,
        sentences,  # type: ignore[arg-type]
        sentence_vectors,
        lexical,
        None,
        {},
        OffsetLists(parts),  # type: ignore[arg-type]
        version,
        parts,
        live,
        slive,
    )
    return index


def _flat_index(vectors: np.ndarray) -> Any:
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def safe_name(channel: str) -> str:
    """A file-system-safe stem for a channel id such as `st:/models/bge-m3`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", channel).strip("_") or "channel"


def write_index(index: Index, base: Index | None = None, deleted: Iterable[str] = ()) -> None:
    """Write a new version of `index.folder` and point its manifest at it. Hold `write_lock`.

    Without `base` (a first build, a rebuild, an index of an older format), `index` becomes the one segment of
    the new version. With `base` (the current version, opened), the new version lists `base`'s segments with
    the documents in `deleted` tombstoned, plus `index` as a new segment when it holds any document: only the
    new newsletters are written. `index.manifest` describes the whole new version (all its documents).

    Layout (docs/store.md): `<folder>/segments/<segment>/` holds the files of one segment and
    `<folder>/versions/<version>/manifest.json` lists a version's segments; neither changes once named.
    `<folder>/manifest.json` names the current version and is replaced atomically (rename), so a reader sees
    either the old version or the new one, whole. A write killed half-way leaves `.tmp-*` folders, removed by
    the next write; old versions are deleted once no reader holds them, and segments once no version lists them.
    """
    folder = index.folder
    versions = folder / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    (folder / SEGMENTS).mkdir(exist_ok=True)
    current = _read_pointer(folder)
    clean_stale(folder)
    seq = _version_seq(current.get("version", "")) + 1 if current else 1
    entries = _kept_segments(base, set(deleted)) if base is not None else []
    if base is not None:
        _add_tables(folder, base, {e["name"] for e in entries})
    if index.documents or not entries:
        entries.append(_write_segment(folder, index, f"s{seq:06d}-{uuid.uuid4().hex[:8]}"))
    _write_version(folder, index.manifest, entries, seq)


def _add_tables(folder: Path, base: Index, names: set[str]) -> None:
    """Give the kept segments written before tables (rag.tables) and name-check postings (rag.mentions) theirs,
    from what is already read or derived: the next open reads them instead of parsing the jsonl and scanning the
    text. Only files are added, each renamed into place when complete (`table.npz` after `table.json`)."""
    from rag.mentions import SegmentMentions
    from rag.tables import TABLE, TABLE_NAMES, ChunkTable, SentenceTable, save_tables

    for part in base.parts:
        seg = part.segment
        target = folder / SEGMENTS / seg.name
        if seg.name not in names:
            continue
        tables = isinstance(seg.chunks, ChunkTable) and isinstance(seg.sentences, SentenceTable)
        if not (target / TABLE).exists() and tables:
            tmp = folder / SEGMENTS / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                save_tables(tmp, seg.chunks, seg.sentences)  # type: ignore[arg-type]
                os.rename(tmp / TABLE_NAMES, target / TABLE_NAMES)
                os.rename(tmp / TABLE, target / TABLE)
                _fsync_dir(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        if not (target / seglib.MENTIONS).exists():
            tmp = folder / SEGMENTS / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}"
            try:
                mentions: SegmentMentions = seg.mentions()
                mentions.save(tmp)
                _fsync_dir(tmp)
                os.rename(tmp, target / seglib.MENTIONS)
                _fsync_dir(target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


def _kept_segments(base: Index, deleted: set[str]) -> list[dict[str, Any]]:
    """`base`'s segment entries with `deleted` tombstoned; segments left with no live document are dropped."""
    if not base.parts:
        raise ValueError("only a segmented index can be written incrementally")
    by_name = {e["name"]: e for e in base.manifest.segments}
    out = []
    for part in base.parts:
        seg = part.segment
        dead = set(part.deleted) | (deleted & set(seg.documents))
        if len(dead) >= len(seg.documents):
            continue
        out.append({**by_name[seg.name], "deleted": sorted(dead)})
    return out


def _write_segment(folder: Path, index: Index, name: str) -> dict[str, Any]:
    """Write `index`'s documents as segment `name`: into `segments/.tmp-*`, renamed when complete."""
    segments = folder / SEGMENTS
    tmp = segments / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        seg = Segment(
            name,
            index.documents,
            list(index.chunks),
            list(index.sentences),
            index.vectors,
            index.sentence_vectors,
            index.lexical,
        )
        entry = seglib.write_segment(tmp, seg, safe_name, _write_jsonl, _doc_to_json, _chunk_to_json)
        _fsync_dir(tmp)
        os.rename(tmp, segments / name)
        _fsync_dir(segments)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return entry


def _write_version(folder: Path, manifest: Manifest, entries: list[dict[str, Any]], seq: int) -> None:
    """Name a version listing `entries` and make it current (the one atomic switch), then clean up."""
    versions = folder / VERSIONS
    name = f"v{seq:06d}-{uuid.uuid4().hex[:8]}"
    live_docs = sum(e["documents"] - len(e["deleted"]) for e in entries)
    data = {
        **manifest.to_json(),
        "format_version": FORMAT_VERSION,
        "segments": entries,
        "search": seglib.search_settings(),
        "version": name,
    }
    data["counts"] = {**data.get("counts", {}), "segments": len(entries), "documents": live_docs}
    tmp = versions / f"{TMP_PREFIX}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_json(tmp / MANIFEST, data)  # the version's manifest: also the lease file of its readers
        _fsync_dir(tmp)
        os.rename(tmp, versions / name)
        _fsync_dir(versions)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _replace_json(folder / MANIFEST, data)  # the switch: one atomic rename
    clean_stale(folder)


def merge_plan(entries: Sequence[dict[str, Any]], max_segments: int, max_chunks: int) -> list[str]:
    """Segments to merge into one, smallest first (live chunks), or [] when none need it.

    Merging is due when there are more than `max_segments` segments, or a segment of at most `max_chunks`
    chunks has lost half of its documents to tombstones. Only segments whose live chunks add up to at most
    `max_chunks` are merged, so a merge never builds an HNSW graph over the archive (big segments stay).
    """

    def live(e: dict[str, Any]) -> int:
        docs = max(int(e["documents"]), 1)
        return round(int(e["chunks"]) * (docs - len(e.get("deleted", ()))) / docs)

    holey = [e for e in entries if e["chunks"] <= max_chunks and 2 * len(e.get("deleted", ())) >= e["documents"] > 0]
    if len(entries) <= max_segments and not holey:
        return []
    picked, total = [], 0
    for e in sorted((e for e in entries if e["chunks"] <= max_chunks), key=live):
        if total + live(e) > max_chunks:
            break
        picked.append(e["name"])
        total += live(e)
    if len(picked) < 2 and not (picked and any(e["name"] == picked[0] for e in holey)):
        return []
    return picked


def merge_segments(
    folder: Path, embedders: tuple[str, ...], lexical: bool, max_segments: int = 8, max_chunks: int = 50_000
) -> list[str]:
    """Merge segments of the current version when `merge_plan` says so: one new segment of their live rows
    (vectors and BM25 counts copied, nothing re-embedded or re-analysed), then a version listing it in their
    place. Hold `write_lock`. Returns the names of the segments merged.
    """
    index = open_index(folder, embedders, lexical if lexical else None)
    names = merge_plan(index.manifest.segments, max_segments, max_chunks)
    if not names:
        return []
    from rag.lexical import LexicalIndex

    chosen = [p for p in index.parts if p.segment.name in names]
    documents: dict[str, Document] = {}
    chunks: list[Chunk] = []
    sentences: list[tuple[str, int, int]] = []
    vectors: dict[str, list[np.ndarray]] = {ch: [] for ch in embedders}
    sentence_vectors: dict[str, list[np.ndarray]] = {ch: [] for ch in embedders}
    lex_parts = []
    for p in chosen:
        seg = p.segment
        keep = np.ones(len(seg.chunks), bool) if p.live is None else p.live
        skeep = np.ones(len(seg.sentences), bool) if p.sentence_live is None else p.sentence_live
        documents.update((d, doc) for d, doc in seg.documents.items() if d not in p.deleted)
        chunks += [c for c, k in zip(seg.chunks, keep, strict=True) if k]
        sentences += [s for s, k in zip(seg.sentences, skeep, strict=True) if k]
        for ch in embedders:
            vectors[ch].append(np.asarray(seg.vectors[ch])[keep])
            sentence_vectors[ch].append(np.asarray(seg.sentence_vectors[ch])[skeep])
        if seg.lexical is not None:
            lex_parts.append((seg.lexical, None if p.live is None else keep))
    merged = Index(
        folder,
        index.manifest,
        documents,
        chunks,
        {ch: np.concatenate(v) for ch, v in vectors.items()},
        sentences,
        {ch: np.concatenate(v) for ch, v in sentence_vectors.items()},
        LexicalIndex.concat(lex_parts) if lexical else None,
        None,
        {"_": None},  # no in-memory FAISS copy: the segment writer builds what it needs
        [[]],
    )
    seq = _version_seq(index.version) + 1
    entry = _write_segment(folder, merged, f"s{seq:06d}-{uuid.uuid4().hex[:8]}")
    entries, placed = [], False
    for e in _kept_segments(index, set()):
        if e["name"] in names:
            if not placed:
                entries.append(entry)
                placed = True
        else:
            entries.append(e)
    _write_version(folder, index.manifest, entries, seq)
    return names


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
    segments = folder / SEGMENTS
    if segments.is_dir() and current:
        listed = set()  # segments some remaining version (current, or held by a reader) lists
        for v in versions.iterdir() if versions.is_dir() else ():
            try:
                listed |= {e["name"] for e in json.loads((v / MANIFEST).read_text("utf-8")).get("segments", ())}
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for p in sorted(segments.iterdir()):
            if p.name not in listed:
                shutil.rmtree(p, ignore_errors=True)
                deleted.append(f"{SEGMENTS}/{p.name}")
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
            if manifest.format_version >= 4:
                return _load_segments(folder, manifest, str(version), vectors)
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
    if manifest.format_version not in READABLE_FORMATS:
        raise FormatOutdated(
            f"index {folder.name} has format version {manifest.format_version}, this program reads "
            f"{' and '.join(map(str, READABLE_FORMATS))}"
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


def _load_segments(folder: Path, manifest: Manifest, version: str, with_vectors: bool = True) -> Index:
    """Open the segments a version lists (memory-mapped; segments this process has open are shared)."""
    pieces = []
    current = "?"
    try:
        for entry in manifest.segments:
            current = f"{SEGMENTS}/{entry['name']}"
            seg = seglib.load_segment(
                folder / SEGMENTS / entry["name"],
                manifest.embedders if with_vectors else (),
                manifest.lexical,
                safe_name,
                _read_jsonl,
                _doc_from_json,
                _chunk_from_json,
            )
            pieces.append((seg, frozenset(entry.get("deleted", ()))))
    except FileNotFoundError as exc:
        if not (folder / VERSIONS / version).exists():
            raise _Vanished(str(exc)) from exc
        raise StoreError(f"index {folder.name!r} is damaged: {current} is missing ({_short(exc)})") from exc
    except seglib.SegmentDamaged as exc:
        raise StoreError(f"index {folder.name!r} is damaged: {current}: {str(exc)[:200]}") from exc
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise StoreError(f"index {folder.name!r} is damaged: {current}: {_short(exc)}") from exc
    return assemble(folder, manifest, pieces, version)


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
    loads = _fast_loads()
    with open(path, "rb") as fh:
        return [loads(line) for line in fh if line.strip()]


@functools.lru_cache(maxsize=1)
def _fast_loads() -> Any:
    """orjson's parser when installed (gradio's dependency; 3-4× faster on big indexes), else json's."""
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover
        return json.loads


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
