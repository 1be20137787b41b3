"""Where an index's vectors live: the seam between the pipeline and a store (`Settings.index_backend`).

Every backend keeps the index folder of `rag.store` (manifest, versions, documents, chunks, sentences, BM25)
with its write lock, atomic pointer swap and readers' leases; what differs is where the dense vectors and the
lexical postings are kept and searched:

- `faiss` (the default): vector files in the version folder, loaded into memory, searched by `rag.retrieve`;
- `milvus`: collections in a Milvus server or a Milvus Lite file (`rag.milvus_store`); the opened Index
  fetches the vectors it needs and searches through the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from rag.settings import Settings
from rag.store import Index, IndexMismatch, _read_pointer, open_index, write_index

BACKENDS = ("faiss", "milvus")


class IndexStore(Protocol):
    """Opens and writes one index; `write` is called holding `rag.store.write_lock(index.folder)`."""

    name: str

    def open(self, folder: Path, embedders: tuple[str, ...] | None, lexical: bool | None) -> Index: ...

    def write(self, index: Index) -> None: ...


class FolderStore:
    """The embedded backend: every file in the index folder (`rag.store`)."""

    name = "faiss"
    incremental = True  # writes one segment of what changed (write_index with `base`), see docs/store.md

    def open(self, folder: Path, embedders: tuple[str, ...] | None, lexical: bool | None) -> Index:
        check_backend(folder, self.name)
        return open_index(folder, embedders, lexical)

    def write(self, index: Index, base: Index | None = None, deleted: Iterable[str] = ()) -> None:
        write_index(index, base, deleted)


def store_for(settings: Settings) -> IndexStore:
    """The store `settings.index_backend` names (ValueError for an unknown one)."""
    name = settings.index_backend.strip().lower()
    if name == "faiss":
        return FolderStore()
    if name == "milvus":
        from rag.milvus_store import MilvusStore

        return MilvusStore.of(settings)
    raise ValueError(f"unknown index_backend {settings.index_backend!r}; use one of {', '.join(BACKENDS)}")


def backend_of(folder: Path) -> str:
    """The backend the current version of the index at `folder` was written by ("" when there is none)."""
    pointer = _read_pointer(folder)
    if not pointer:
        return ""
    return str((pointer.get("backend") or {}).get("name") or "faiss")


def check_backend(folder: Path, name: str) -> None:
    """IndexMismatch when the index at `folder` was written by another backend than `name`."""
    found = backend_of(folder)
    if found and found != name:
        raise IndexMismatch(
            f"index {folder.name!r} keeps its vectors in {found}, but index_backend is {name!r}. Use the same "
            f"index_backend, another --index, or re-index its newsletters with `newsletter-qa ingest --rebuild` "
            "(keeps them all)"
        )
