"""A segment's chunks and sentences as columns: integer arrays per field, the text left in the documents.

A `Chunk` (or a sentence's (doc_id, start, end)) is made only for the rows a question touches, so an opened
index holds a few arrays per segment instead of a Python object per chunk and per sentence (at 100k chunks:
~15 MB instead of ~250 MB), and a segment written with its tables (`table.npz`, `table.json`) opens without
parsing its chunks and sentences (jsonl, still written beside them for older readers and for `stored_documents`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from rag.types import Chunk, Document


def row_index(key: Any, n: int) -> int:
    """`key` as a row of a sequence of `n` rows, counted from the end when negative; IndexError outside."""
    i = int(key) + (n if key < 0 else 0)
    if not 0 <= i < n:
        raise IndexError(key)
    return i


TABLE = "table.npz"
TABLE_NAMES = "table.json"


@dataclass(frozen=True, eq=False)
class SentenceTable(Sequence[tuple[str, int, int]]):
    """Sentence rows as (doc_id, start, end), from arrays; `doc` indexes `doc_ids`."""

    doc_ids: tuple[str, ...]
    doc: np.ndarray  # int32
    start: np.ndarray  # int64
    end: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.doc)

    @overload
    def __getitem__(self, row: int) -> tuple[str, int, int]: ...
    @overload
    def __getitem__(self, row: slice) -> list[tuple[str, int, int]]: ...
    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return (self.doc_ids[self.doc[row]], int(self.start[row]), int(self.end[row]))

    def __iter__(self) -> Iterator[tuple[str, int, int]]:
        ids = self.doc_ids
        return zip((ids[d] for d in self.doc.tolist()), self.start.tolist(), self.end.tolist(), strict=True)

    @classmethod
    def of(cls, sentences: Iterable[tuple[str, int, int]], doc_ids: Sequence[str]) -> SentenceTable | None:
        """The table of `sentences`, or None when one is of a document not in `doc_ids`."""
        pos = {d: i for i, d in enumerate(doc_ids)}
        rows = list(sentences)
        if any(d not in pos for d, _a, _b in rows):
            return None
        return cls(
            tuple(doc_ids),
            np.fromiter((pos[d] for d, _a, _b in rows), np.int32, len(rows)),
            np.fromiter((a for _d, a, _b in rows), np.int64, len(rows)),
            np.fromiter((b for _d, _a, b in rows), np.int64, len(rows)),
        )


@dataclass(frozen=True, eq=False)
class ChunkTable(Sequence[Chunk]):
    """Chunk rows from arrays; a row's text and sentence spans are cut from its document when it is read."""

    documents: Mapping[str, Document]
    doc_ids: tuple[str, ...]
    doc: np.ndarray  # int32, into doc_ids
    ordinal: np.ndarray  # int32
    start: np.ndarray  # int64
    end: np.ndarray  # int64
    section: np.ndarray  # int32, into names
    heading: np.ndarray  # int32, into names
    language: np.ndarray  # int32, into names
    names: tuple[str, ...]  # the distinct sections, headings and languages
    sentence_ptr: np.ndarray  # (n + 1,) int64: row i's sentence spans are sentence_spans[ptr[i]:ptr[i+1]]
    sentence_spans: np.ndarray  # (m, 2) int64
    ids: tuple[str, ...] = ()  # chunk ids, when any is not f"{doc_id}#{ordinal}"

    def __len__(self) -> int:
        return len(self.doc)

    @overload
    def __getitem__(self, row: int) -> Chunk: ...
    @overload
    def __getitem__(self, row: slice) -> list[Chunk]: ...
    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = row_index(row, len(self))
        doc_id = self.doc_ids[self.doc[row]]
        start, end, ordinal = int(self.start[row]), int(self.end[row]), int(self.ordinal[row])
        spans = self.sentence_spans[self.sentence_ptr[row] : self.sentence_ptr[row + 1]].tolist()
        return Chunk(
            chunk_id=self.ids[row] if self.ids else f"{doc_id}#{ordinal}",
            doc_id=doc_id,
            ordinal=ordinal,
            start=start,
            end=end,
            text=self.documents[doc_id].text[start:end],
            sentences=tuple((a, b) for a, b in spans),
            section=self.names[self.section[row]],
            heading=self.names[self.heading[row]],
            language=self.names[self.language[row]],
        )

    def __iter__(self) -> Iterator[Chunk]:
        return (self[i] for i in range(len(self)))

    def chunk_ids(self) -> list[str]:
        if self.ids:
            return list(self.ids)
        ids = self.doc_ids
        return [f"{ids[d]}#{o}" for d, o in zip(self.doc.tolist(), self.ordinal.tolist(), strict=True)]

    @classmethod
    def of(cls, chunks: Sequence[Chunk], documents: Mapping[str, Document]) -> ChunkTable | None:
        """The table of `chunks` (rows in order), or None when a chunk's text is not its document's text at its
        offsets (such chunks are kept as they are)."""
        doc_pos = {d: i for i, d in enumerate(documents)}
        names: dict[str, int] = {}
        n = len(chunks)
        spans = [s for c in chunks for s in c.sentences]
        for c in chunks:
            doc = documents.get(c.doc_id)
            if doc is None or doc.text[c.start : c.end] != c.text or any(len(s) != 2 for s in c.sentences):
                return None
        ids = tuple(c.chunk_id for c in chunks)
        derived = all(c.chunk_id == f"{c.doc_id}#{c.ordinal}" for c in chunks)
        return cls(
            documents=documents,
            doc_ids=tuple(documents),
            doc=np.fromiter((doc_pos[c.doc_id] for c in chunks), np.int32, n),
            ordinal=np.fromiter((c.ordinal for c in chunks), np.int32, n),
            start=np.fromiter((c.start for c in chunks), np.int64, n),
            end=np.fromiter((c.end for c in chunks), np.int64, n),
            section=np.fromiter((names.setdefault(c.section, len(names)) for c in chunks), np.int32, n),
            heading=np.fromiter((names.setdefault(c.heading, len(names)) for c in chunks), np.int32, n),
            language=np.fromiter((names.setdefault(c.language, len(names)) for c in chunks), np.int32, n),
            names=tuple(names),
            sentence_ptr=np.cumsum([0] + [len(c.sentences) for c in chunks]).astype(np.int64),
            sentence_spans=np.array(spans, np.int64).reshape(len(spans), 2),
            ids=() if derived else ids,
        )


def save_tables(folder: Path, chunks: ChunkTable, sentences: SentenceTable) -> None:
    """Write both tables into a segment folder (`table.npz` arrays, `table.json` strings), fsynced."""
    with open(folder / TABLE, "wb") as fh:
        np.savez(
            fh,
            chunk_doc=chunks.doc,
            chunk_ordinal=chunks.ordinal,
            chunk_start=chunks.start,
            chunk_end=chunks.end,
            chunk_section=chunks.section,
            chunk_heading=chunks.heading,
            chunk_language=chunks.language,
            sentence_ptr=chunks.sentence_ptr,
            sentence_spans=chunks.sentence_spans,
            sentence_doc=sentences.doc,
            sentence_start=sentences.start,
            sentence_end=sentences.end,
        )
        fh.flush()
        os.fsync(fh.fileno())
    names = {"doc_ids": list(chunks.doc_ids), "names": list(chunks.names), "ids": list(chunks.ids)}
    with open(folder / TABLE_NAMES, "w", encoding="utf-8") as fh:
        json.dump(names, fh, ensure_ascii=False)
        fh.flush()
        os.fsync(fh.fileno())


def load_tables(folder: Path, documents: Mapping[str, Document]) -> tuple[ChunkTable, SentenceTable]:
    """The tables `save_tables` wrote (their document order must be `documents`')."""
    names = json.loads((folder / TABLE_NAMES).read_text("utf-8"))
    doc_ids = tuple(names["doc_ids"])
    if doc_ids != tuple(documents):
        raise ValueError("table.json: documents differ from documents.jsonl")
    with np.load(folder / TABLE) as z:
        a = {k: z[k] for k in z.files}
    chunks = ChunkTable(
        documents=documents,
        doc_ids=doc_ids,
        doc=a["chunk_doc"],
        ordinal=a["chunk_ordinal"],
        start=a["chunk_start"],
        end=a["chunk_end"],
        section=a["chunk_section"],
        heading=a["chunk_heading"],
        language=a["chunk_language"],
        names=tuple(names["names"]),
        sentence_ptr=a["sentence_ptr"],
        sentence_spans=a["sentence_spans"],
        ids=tuple(names["ids"]),
    )
    return chunks, SentenceTable(doc_ids, a["sentence_doc"], a["sentence_start"], a["sentence_end"])


class Joined(Sequence[Any]):
    """Several sequences (the segments' tables) read as one, without copying them."""

    def __init__(self, parts: Sequence[Sequence[Any]]) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, row: Any) -> Any:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        row = row_index(row, len(self))
        s = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return self.parts[s][row - int(self.offsets[s])]

    def __iter__(self) -> Iterator[Any]:
        for p in self.parts:
            yield from p
