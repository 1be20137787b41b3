"""Segments: the immutable pieces of a segmented index (format 4), and the arrays that read them as one.

A segment holds the newsletters of one ingest (or of one merge): their documents, chunks and sentences
(jsonl), one memory-mapped `.npy` of chunk vectors and one of sentence vectors per encoder, its BM25 counts
(`lexical/`, memory-mapped) and, above `FLAT_MAX` chunks, one HNSW graph per encoder. A version of the index
lists its segments and, per segment, the documents deleted from it since it was written (tombstones).
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import os
import threading
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rag.rowfile import RowFile
from rag.tables import TABLE, ChunkTable, SentenceTable, load_tables, row_index, save_tables
from rag.types import Chunk, Document

SEGMENTS = "segments"
META = "segment.json"  # written last: a segment folder without it is never read
MENTIONS = "mentions"  # the documents' text and postings for the name checks (rag.mentions)
FLAT_MAX = 50_000  # chunks up to which a segment's dense channels are searched exactly; above, HNSW
HNSW_M = 32  # graph degree
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # candidates explored per question (at least the number asked for)
EXACT_POOL = 5_000  # a filtered pool this small is searched exactly even in an HNSW segment


def dense_kind(n_chunks: int) -> str:
    """The dense search a segment of `n_chunks` gets: "flat" (exact) or "hnsw"."""
    return "flat" if n_chunks <= FLAT_MAX else "hnsw"


def search_settings() -> dict[str, Any]:
    """What decides the dense index type, recorded in every manifest."""
    return {
        "flat_max": FLAT_MAX,
        "hnsw": {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH},
        "exact_pool": EXACT_POOL,
    }


class SegmentDamaged(ValueError):
    """A file of a segment that cannot be read as written."""

    def __init__(self, file: str, exc: BaseException) -> None:
        self.file = file
        super().__init__(f"{file}: {type(exc).__name__}: {exc}")


class Rows:
    """Row-stacked 2-D arrays (the segments' memory-mapped vectors) read as one, without copying them."""

    def __init__(self, parts: Sequence[np.ndarray], dim: int) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)
        self.shape = (int(self.offsets[-1]), dim)
        self.dtype = np.dtype(np.float32)
        self.ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = row_index(key, len(self))
            s = int(np.searchsorted(self.offsets, i, side="right")) - 1
            return np.asarray(self.parts[s][i - self.offsets[s]])
        if isinstance(key, slice):
            key = np.arange(len(self))[key]
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).ravel()
        out = np.empty((len(rows), self.shape[1]), np.float32)
        seg = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(seg):
            sel = seg == s
            out[sel] = self.parts[s][rows[sel] - self.offsets[s]]
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.concatenate([np.asarray(p) for p in self.parts]) if self.parts else np.zeros(self.shape, np.float32)
        return out.astype(dtype) if dtype is not None else out

    def astype(self, dtype: Any) -> np.ndarray:
        return np.asarray(self).astype(dtype)


def stack(parts: Sequence[np.ndarray], dim: int) -> Any:
    """One array-like over `parts`: the part itself when there is one (a memory map), else `Rows`."""
    if len(parts) == 1:
        return parts[0]
    return Rows(parts, dim)


@dataclass(eq=False)
class Segment:
    """One opened segment: its rows are in the order written; vectors and BM25 counts are memory-mapped."""

    name: str
    documents: dict[str, Document]
    chunks: Sequence[Chunk]  # a tables.ChunkTable when read from disk (rows made on access)
    sentences: Sequence[tuple[str, int, int]]  # a tables.SentenceTable when read from disk
    vectors: dict[str, np.ndarray]
    sentence_vectors: dict[str, np.ndarray]
    lexical: Any = None  # rag.lexical.LexicalIndex | None
    graphs: dict[str, Any] = field(default_factory=dict)  # channel → FAISS HNSW (segments above FLAT_MAX)
    dense: str = "flat"  # "flat" | "hnsw"
    # channel → an open descriptor of its graph file, read at the first search (opened under the lease, so
    # the graph stays readable after the segment is deleted: /proc/self/fd/N)
    graph_files: dict[str, int] = field(default_factory=dict)
    chunk_sentences: list[list[int]] = field(default_factory=list)  # local chunk row → local sentence rows
    folder: Path | None = None  # where it was read from (None: not written yet)
    __weakref__: Any = field(default=None, init=False, repr=False, compare=False)
    _derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def derived(self, key: str, make: Any) -> Any:
        """`make(self)` computed once per opened segment (shared by every index version that lists it)."""
        value = self._derived.get(key)
        if value is None:
            with self._lock:
                value = self._derived.get(key)
                if value is None:
                    value = self._derived[key] = make(self)
        return value

    def graph(self, channel: str) -> Any:
        """The channel's HNSW graph (read on first use), or None for a flat segment."""
        graph = self.graphs.get(channel)
        if graph is None and channel in self.graph_files:
            with self._lock:
                graph = self.graphs.get(channel)
                fd = self.graph_files.get(channel)
                if graph is None and fd is not None:
                    import faiss

                    # memory-mapped (graph and vectors): page cache shared by every process, not a private copy
                    graph = faiss.read_index(f"/proc/self/fd/{fd}", faiss.IO_FLAG_MMAP_IFC)
                    graph.hnsw.efSearch = HNSW_EF_SEARCH  # type: ignore[attr-defined]
                    self.graphs[channel] = graph
                    del self.graph_files[channel]
                    os.close(fd)
        return graph

    def chunk_codes(self) -> ChunkCodes:
        """Per-chunk languages, documents and sections as arrays (what filters and row maps need)."""
        return self.derived("codes", ChunkCodes.of)

    def mentions(self) -> Any:
        """Its documents for the name checks (`rag.mentions.SegmentMentions`), in `documents` order."""
        return self.derived("mentions", _mentions)

    def doc_positions(self) -> tuple[np.ndarray, np.ndarray]:
        """Each chunk's and each sentence's document, as positions in `documents` (-1: not one of them)."""
        return self.derived("doc_positions", _doc_positions)

    def doc_rows(self) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Document → its chunk rows and its sentence rows (local)."""
        if isinstance(self.chunks, ChunkTable) and isinstance(self.sentences, SentenceTable):
            return _group(self.chunks.doc, self.chunks.doc_ids), _group(self.sentences.doc, self.sentences.doc_ids)
        chunks: dict[str, list[int]] = {}
        for i, c in enumerate(self.chunks):
            chunks.setdefault(c.doc_id, []).append(i)
        sentences: dict[str, list[int]] = {}
        for i, (d, _a, _b) in enumerate(self.sentences):
            sentences.setdefault(d, []).append(i)
        return chunks, sentences

    def top(self, channel: str, q: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(local rows, cosines) of the k best chunks for `q` among those `mask` allows (all when None).

        Exact (a matrix product over the memory-mapped vectors) for a flat segment and for a filtered pool of
        at most EXACT_POOL chunks; through the HNSW graph otherwise.
        """
        vectors = self.vectors[channel]
        n = len(vectors)
        allowed = n if mask is None else int(mask.sum())
        k = min(k, allowed)
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        graph = self.graph(channel)
        if graph is None or allowed <= EXACT_POOL:
            with blas_one_thread():
                return self._exact(vectors, q, k, mask, allowed)
        return self._graph(graph, n, q, k, mask)

    @staticmethod
    def _exact(
        vectors: np.ndarray, q: np.ndarray, k: int, mask: np.ndarray | None, allowed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        if mask is None:
            scores, rows = np.asarray(vectors @ q, np.float32), np.arange(len(vectors))
        elif allowed <= EXACT_POOL:  # a small filtered pool: only its rows are read
            rows = np.flatnonzero(mask)
            scores = np.asarray(vectors[rows] @ q, np.float32)
        else:
            scores = np.where(mask, np.asarray(vectors @ q, np.float32), np.float32(-np.inf))
            rows = np.arange(len(vectors))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return rows[top].astype(np.int64), scores[top]

    @staticmethod
    def _graph(graph: Any, n: int, q: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        faiss.omp_set_num_threads(1)  # one question gains nothing from an OpenMP team (see retrieve)
        q2 = np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1)
        if mask is None:
            params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))  # type: ignore[attr-defined]
            dist, ids = graph.search(q2, k, params=params)
        else:
            bits = np.packbits(mask, bitorder="little")  # must outlive the search: the selector points to it
            sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(HNSW_EF_SEARCH, k))  # type: ignore[attr-defined]
            dist, ids = graph.search(q2, k, params=params)
        keep = ids[0] >= 0
        return ids[0][keep].astype(np.int64), dist[0][keep].astype(np.float32)


@dataclass(frozen=True)
class ChunkCodes:
    """A segment's chunks as codes: base language, position in `doc_ids`, position in `sections` (lower-cased)."""

    language: np.ndarray
    doc_ids: list[str]
    chunk_doc: np.ndarray
    sections: list[str]
    chunk_section: np.ndarray
    chunk_ids: list[str]

    @classmethod
    def of(cls, seg: Segment) -> ChunkCodes:
        from rag.lang import base

        table = seg.chunks
        if isinstance(table, ChunkTable):  # from the columns: no chunk is made
            bases = np.array([base(x) for x in table.names], dtype="<U8")
            lowered = [x.lower() for x in table.names]
            sections = list(dict.fromkeys(lowered))
            section_of = np.array([sections.index(x) for x in lowered], np.int64)
            return cls(
                language=bases[table.language] if len(table) else np.zeros(0, "<U8"),
                doc_ids=list(table.doc_ids),
                chunk_doc=table.doc.astype(np.int64),
                sections=sections,
                chunk_section=section_of[table.section] if len(table) else np.zeros(0, np.int64),
                chunk_ids=table.chunk_ids(),
            )
        doc_pos: dict[str, int] = {}
        section_pos: dict[str, int] = {}
        chunks = seg.chunks
        return cls(
            language=np.array([base(c.language) for c in chunks], dtype="<U8"),
            chunk_doc=np.array([doc_pos.setdefault(c.doc_id, len(doc_pos)) for c in chunks], dtype=np.int64),
            doc_ids=list(doc_pos),
            chunk_section=np.array(
                [section_pos.setdefault(c.section.lower(), len(section_pos)) for c in chunks], dtype=np.int64
            ),
            sections=list(section_pos),
            chunk_ids=[c.chunk_id for c in chunks],
        )


def _group(codes: np.ndarray, names: Sequence[str]) -> dict[str, list[int]]:
    """Name → the rows whose code is its position, ascending."""
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {names[i]: order[a:b].tolist() for i, (a, b) in enumerate(itertools.pairwise(bounds)) if b > a}


def _doc_positions(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    chunks, sentences = seg.chunks, seg.sentences
    if isinstance(chunks, ChunkTable) and isinstance(sentences, SentenceTable):
        return chunks.doc, sentences.doc
    pos = {d: i for i, d in enumerate(seg.documents)}
    return (
        np.fromiter((pos.get(c.doc_id, -1) for c in chunks), np.int64, len(chunks)),
        np.fromiter((pos.get(d, -1) for d, _a, _b in sentences), np.int64, len(sentences)),
    )


def _mentions(seg: Segment) -> Any:
    from rag.mentions import SegmentMentions

    if seg.folder is not None and (seg.folder / MENTIONS).is_dir():  # written with the segment: mapped
        try:
            mentions = SegmentMentions.load(seg.folder / MENTIONS)
            if len(mentions) != len(seg.documents):
                raise ValueError(f"{len(mentions)} documents, the segment has {len(seg.documents)}")
            return mentions
        except (OSError, ValueError) as exc:
            raise SegmentDamaged(MENTIONS, exc) from exc
    return SegmentMentions.of(doc.text for doc in seg.documents.values())  # a segment written before them


_BLAS: list[Any] = []


def blas_one_thread() -> Any:
    """A context running numpy's BLAS on one thread: a question's matrix-vector products over a segment are
    3-4× faster so than with a BLAS thread team competing with the encoders' threads (threadpoolctl when
    installed; else nothing changes)."""
    import contextlib

    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:  # pragma: no cover
            _BLAS.append(None)
    controller = _BLAS[0]
    return contextlib.nullcontext() if controller is None else controller.limit(limits=1, user_api="blas")


def build_graph(vectors: np.ndarray) -> Any:
    """An HNSW graph (inner product) over `vectors`."""
    import faiss

    graph = faiss.IndexHNSWFlat(vectors.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    graph.add(np.ascontiguousarray(vectors, dtype=np.float32))
    graph.hnsw.efSearch = HNSW_EF_SEARCH
    return graph


def write_segment(
    folder: Path, seg: Segment, safe_name: Any, write_jsonl: Any, doc_to_json: Any, chunk_to_json: Any
) -> dict[str, Any]:
    """Write `seg`'s files into `folder` (a temp folder the caller renames); returns its manifest entry."""
    import faiss

    write_jsonl(folder / "documents.jsonl", (doc_to_json(d) for d in seg.documents.values()))
    write_jsonl(folder / "chunks.jsonl", (chunk_to_json(c) for c in seg.chunks))
    write_jsonl(folder / "sentences.jsonl", ({"doc_id": d, "start": s, "end": e} for d, s, e in seg.sentences))
    kind = dense_kind(len(seg.chunks))
    for channel, vectors in seg.vectors.items():
        v = np.ascontiguousarray(np.asarray(vectors), dtype=np.float32)
        _save_npy(folder / f"vectors-{safe_name(channel)}.npy", v)
        if kind == "hnsw":
            faiss.write_index(build_graph(v), str(folder / f"hnsw-{safe_name(channel)}.faiss"))
    for channel, vectors in seg.sentence_vectors.items():
        _save_npy(folder / f"sentences-{safe_name(channel)}.npy", np.asarray(vectors, dtype=np.float32))
    if seg.lexical is not None:
        seg.lexical.save(folder / "lexical")
    chunk_table = seg.chunks if isinstance(seg.chunks, ChunkTable) else ChunkTable.of(seg.chunks, seg.documents)
    sentence_table = (
        seg.sentences
        if isinstance(seg.sentences, SentenceTable)
        else SentenceTable.of(seg.sentences, list(seg.documents))
    )
    if chunk_table is not None and sentence_table is not None and sentence_table.doc_ids == chunk_table.doc_ids:
        save_tables(folder, chunk_table, sentence_table)
    from rag.mentions import SegmentMentions

    SegmentMentions.of(doc.text for doc in seg.documents.values()).save(folder / MENTIONS)
    meta = {
        "name": seg.name,
        "documents": len(seg.documents),
        "chunks": len(seg.chunks),
        "sentences": len(seg.sentences),
        "dense": kind,
        "lexical": seg.lexical is not None,
    }
    _write_meta(folder / META, meta)
    return {k: meta[k] for k in ("name", "documents", "chunks", "sentences", "dense")} | {"deleted": []}


def _save_npy(path: Path, arr: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, arr)
        fh.flush()
        os.fsync(fh.fileno())


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())


_CACHE: weakref.WeakValueDictionary[tuple[str, str], Segment] = weakref.WeakValueDictionary()
_CACHE_LOCK = threading.Lock()


def load_segment(
    folder: Path,
    embedders: Sequence[str],
    lexical: bool,
    safe_name: Any,
    read_jsonl: Any,
    doc_from_json: Any,
    chunk_from_json: Any,
) -> Segment:
    """Open a segment folder (memory-mapping its arrays); a segment already open in this process is shared."""
    key = (str(folder.resolve()), ",".join(embedders))
    with _CACHE_LOCK:
        seg = _CACHE.get(key)
    if seg is not None:
        return seg
    current = META
    graph_files: dict[str, int] = {}
    try:
        meta = json.loads((folder / META).read_text("utf-8"))
        current = "documents.jsonl"
        documents = {d.doc_id: d for d in map(doc_from_json, read_jsonl(folder / "documents.jsonl"))}
        chunks, sentences = _read_rows(folder, documents, read_jsonl, chunk_from_json)
        vectors: dict[str, np.ndarray] = {}
        sentence_vectors: dict[str, np.ndarray] = {}
        graphs: dict[str, Any] = {}
        for channel in embedders:
            # Vectors only read by rows (those of an HNSW segment; sentence vectors) are read with pread
            # (rag.rowfile); a flat segment's, searched by a full matrix product, are memory-mapped.
            current = f"vectors-{safe_name(channel)}.npy"
            path = folder / current
            rows: Any = RowFile(path) if meta.get("dense") == "hnsw" else np.load(path, mmap_mode="r")
            vectors[channel] = rows
            current = f"sentences-{safe_name(channel)}.npy"
            sentence_vectors[channel] = RowFile(folder / current)  # type: ignore[assignment]
            if meta.get("dense") == "hnsw":  # read at the first search (the open stays cheap for writers)
                current = f"hnsw-{safe_name(channel)}.faiss"
                graph_files[channel] = os.open(folder / current, os.O_RDONLY)
            if len(vectors[channel]) != len(chunks) or len(sentence_vectors[channel]) != len(sentences):
                raise ValueError(f"segment {folder.name}: {channel} vectors do not match rows")
        lex = None
        if lexical:
            from rag.lexical import LexicalIndex

            current = "lexical"
            lex = LexicalIndex.load(folder / "lexical")
            if len(lex) != len(chunks):
                raise ValueError(f"segment {folder.name}: lexical rows do not match chunks")
    except SegmentDamaged:
        _close_all(graph_files)
        raise
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        _close_all(graph_files)
        raise SegmentDamaged(current, exc) from exc
    except BaseException:
        _close_all(graph_files)
        raise
    seg = Segment(meta["name"], documents, chunks, sentences, vectors, sentence_vectors, lex, graphs)
    seg.dense, seg.graph_files, seg.folder = str(meta.get("dense", "flat")), graph_files, folder
    weakref.finalize(seg, _close_all, graph_files)
    seg.chunk_sentences = SentenceRanges.of(chunks, sentences)  # type: ignore[assignment]
    with _CACHE_LOCK:
        _CACHE[key] = seg
    return seg


def _read_rows(
    folder: Path, documents: dict[str, Document], read_jsonl: Any, chunk_from_json: Any
) -> tuple[Sequence[Chunk], Sequence[tuple[str, int, int]]]:
    """A segment's chunks and sentences: its tables when it has them; else its jsonl, kept as tables (or, when
    they cannot be, as lists)."""
    if (folder / TABLE).exists():
        try:
            return load_tables(folder, documents)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise SegmentDamaged(TABLE, exc) from exc
    try:
        chunks: Sequence[Chunk] = [chunk_from_json(j) for j in read_jsonl(folder / "chunks.jsonl")]
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentDamaged("chunks.jsonl", exc) from exc
    try:
        sentences: Sequence[tuple[str, int, int]] = [
            (j["doc_id"], j["start"], j["end"]) for j in read_jsonl(folder / "sentences.jsonl")
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise SegmentDamaged("sentences.jsonl", exc) from exc
    chunk_table = ChunkTable.of(chunks, documents)
    sentence_table = SentenceTable.of(sentences, list(documents))
    if chunk_table is not None and sentence_table is not None:
        return chunk_table, sentence_table
    return chunks, sentences


class SentenceRanges:
    """Chunk row → the rows of the sentences it overlaps: in a segment a document's sentences are consecutive
    rows in text order, so each chunk's are one range, found for all chunks at once by binary search."""

    def __init__(self, first: np.ndarray, last: np.ndarray) -> None:
        self.first, self.last = first, last

    @classmethod
    def of(cls, chunks: Sequence[Chunk], sentences: Sequence[tuple[str, int, int]]) -> SentenceRanges:
        if isinstance(chunks, ChunkTable) and isinstance(sentences, SentenceTable):
            # the same document codes in both; a document's sentences are in text order: one code per run
            order = np.concatenate([[0], np.flatnonzero(np.diff(sentences.doc)) + 1])
            rank = np.full(len(sentences.doc_ids) + 1, -1, np.int64)
            if len(sentences):
                if len(np.unique(sentences.doc[order])) != len(order):  # a document's rows not consecutive
                    return _Lists(map_chunk_sentences(chunks, sentences))  # type: ignore[return-value]
                rank[sentences.doc[order]] = np.arange(len(order))
            ranges = cls._of_arrays(
                rank[sentences.doc], sentences.start, sentences.end, rank[chunks.doc], chunks.start, chunks.end
            )
            if ranges is None:  # a document's sentences not in text order (never written so): the slow way
                return _Lists(map_chunk_sentences(chunks, sentences))  # type: ignore[return-value]
            return ranges
        doc_pos: dict[str, int] = {}
        s_doc = np.fromiter((doc_pos.setdefault(d, len(doc_pos)) for d, _a, _b in sentences), np.int64, len(sentences))
        s_start = np.fromiter((a for _d, a, _b in sentences), np.int64, len(sentences))
        s_end = np.fromiter((b for _d, _a, b in sentences), np.int64, len(sentences))
        c_doc = np.fromiter((doc_pos.get(c.doc_id, -1) for c in chunks), np.int64, len(chunks))
        c_start = np.fromiter((c.start for c in chunks), np.int64, len(chunks))
        c_end = np.fromiter((c.end for c in chunks), np.int64, len(chunks))
        ranges = cls._of_arrays(s_doc, s_start, s_end, c_doc, c_start, c_end)
        if isinstance(ranges, SentenceRanges):
            return ranges
        return _Lists(map_chunk_sentences(chunks, sentences))  # type: ignore[return-value]

    @classmethod
    def _of_arrays(
        cls,
        s_doc: np.ndarray,
        s_start: np.ndarray,
        s_end: np.ndarray,
        c_doc: np.ndarray,
        c_start: np.ndarray,
        c_end: np.ndarray,
    ) -> SentenceRanges | None:
        """From documents numbered in the order of their sentence rows (-1: a chunk of no such document); None
        when the rows are not grouped by document in text order."""
        big = int(max(s_end.max(initial=0), c_end.max(initial=0))) + 1
        ends, starts = s_doc * big + s_end, s_doc * big + s_start  # sorted: rows grouped by document, in order
        if len(ends) and (np.any(np.diff(ends) < 0) or np.any(np.diff(starts) < 0)):
            return None  # not in that order (never written so): the caller maps them the slow way
        first = np.searchsorted(ends, c_doc * big + c_start, side="right")  # first sentence ending after start
        last = np.searchsorted(starts, c_doc * big + c_end, side="left")  # sentences starting before the end
        last = np.where(c_doc < 0, first, np.maximum(last, first))
        return cls(first, last)

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, row: int) -> list[int]:
        return list(range(int(self.first[row]), int(self.last[row])))

    def __iter__(self) -> Any:
        return (list(range(int(a), int(b))) for a, b in zip(self.first, self.last, strict=True))


class _Lists(list):  # type: ignore[type-arg]
    pass


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def map_chunk_sentences(chunks: Sequence[Chunk], sentences: Sequence[tuple[str, int, int]]) -> list[list[int]]:
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
