"""A checkpoint of finished embeddings, by content hash, so a killed ingest resumes where it stopped.

Each finished batch is one small `.npz` file (sha256 of each text + its vector) written aside and renamed into
`<index>/embed-cache/<channel>/`: a kill leaves whole files or none. The next ingest of the same index reads
them back instead of re-embedding; a successful write of the index clears them (the index then holds the
vectors).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

CACHE_DIR = "embed-cache"


def text_key(text: str) -> str:
    """The content hash a vector is cached under."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Vectors of one channel (embedder) finished by earlier, interrupted ingests of one index."""

    def __init__(self, index_dir: Path, channel: str) -> None:
        from rag.store import safe_name  # the same file-system-safe channel names as the index's own files

        self.folder = Path(index_dir) / CACHE_DIR / safe_name(channel)
        self._vectors: dict[str, np.ndarray] | None = None

    def lookup(self, texts: Sequence[str], dim: int | None = None) -> dict[int, np.ndarray]:
        """Cached vectors for the texts that have one: position in `texts` → vector (of `dim`, when given)."""
        cached = self._load()
        out: dict[int, np.ndarray] = {}
        for i, t in enumerate(texts):
            v = cached.get(text_key(t))
            if v is not None and (dim is None or v.shape[0] == dim):
                out[i] = v
        return out

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Checkpoint one finished batch: written aside, then renamed in (whole or absent after a kill)."""
        keys = [text_key(t) for t in texts]
        self.folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        tmp = self.folder / f".{name}.tmp.npz"
        np.savez(tmp, keys=np.array(keys), vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.folder / f"{name}.npz")
        cached = self._load()
        cached.update(zip(keys, np.asarray(vectors, dtype=np.float32), strict=True))

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
            for f in sorted(self.folder.glob("*.npz")) if self.folder.is_dir() else []:
                if f.name.startswith("."):
                    continue
                try:
                    with np.load(f) as data:
                        self._vectors.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
                except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # torn by a power cut: embed again
                    continue
        return self._vectors


def clear(index_dir: Path) -> None:
    """Drop every checkpoint of an index (after its vectors were written into it). Hold the write lock."""
    shutil.rmtree(Path(index_dir) / CACHE_DIR, ignore_errors=True)
