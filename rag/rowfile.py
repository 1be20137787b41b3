"""Rows of a big `.npy` matrix read with pread, for the vectors a question touches in an HNSW segment.

Memory-mapped, each 2 KB row read at random maps the ~64 KB around it into the process (the kernel's
fault-around, which `madvise(MADV_RANDOM)` does not turn off): after a few hundred questions the whole vector
files of a 100k-chunk segment counted in the process's RSS (1.2 GB). Read with pread, the same pages stay in the
page cache (shared, reclaimable) and only the rows asked for are copied. Flat segments, searched by a full
matrix product, stay memory-mapped.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from rag.tables import row_index


class RowFile:
    """A read-only 2-D float32 `.npy` whose rows are read on demand (indexing as a numpy array's rows)."""

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            fmt = np.lib.format
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = read_header(fh)
            self.offset = fh.tell()
        if fortran or len(shape) != 2 or np.dtype(dtype) != np.float32:
            raise ValueError(f"{path.name}: not a C-ordered 2-D float32 array")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(np.float32)
        self.ndim = 2
        self.row_bytes = self.shape[1] * 4
        self.fd = os.open(path, os.O_RDONLY)  # kept open: the rows stay readable after the file is deleted

    def __del__(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = row_index(key, len(self))
            return self._read(i, 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._read(start, max(0, stop - start))
            key = np.arange(start, stop, step)
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64).ravel()
        rows = np.where(rows < 0, rows + len(self), rows)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError("row out of range")
        out = np.empty((len(rows), self.shape[1]), np.float32)
        if not len(rows):
            return out
        order = np.argsort(rows, kind="stable")
        sorted_rows = rows[order]
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1  # runs of consecutive rows: one read each
        for run in np.split(np.arange(len(sorted_rows)), breaks):
            first = int(sorted_rows[run[0]])
            out[order[run]] = self._read(first, len(run))
        return out

    def _read(self, first: int, n: int) -> np.ndarray:
        size = n * self.row_bytes
        data = os.pread(self.fd, size, self.offset + first * self.row_bytes)
        if len(data) != size:
            raise OSError(f"short read: {len(data)} of {size} bytes")
        return np.frombuffer(data, np.float32).reshape(n, self.shape[1]).copy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self._read(0, len(self))
        return out.astype(dtype) if dtype is not None else out

    def astype(self, dtype: Any) -> np.ndarray:
        return np.asarray(self).astype(dtype)

    def __matmul__(self, other: Any) -> np.ndarray:
        return np.asarray(self) @ other
