"""Staff feedback on answers: an append-only JSON Lines file, `<data_dir>/feedback.jsonl`, and its export."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

FILE_NAME = "feedback.jsonl"
CSV_COLUMNS = (
    "time",
    "answer_id",
    "rating",
    "comment",
    "question",
    "language",
    "ui_language",
    "abstained",
    "answer",
    "citations",
    "index_name",
    "embedders",
    "k",
    "filters",
)


def feedback_path(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def record(data_dir: Path, entry: dict[str, Any]) -> None:
    """Append one entry as one line, under an exclusive lock and fsynced; adds `time` (UTC) when absent.

    The lock (flock on the open file) keeps concurrent writers, threads or processes, from interleaving.
    """
    path = feedback_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"time": datetime.now(UTC).isoformat(timespec="seconds"), **entry}
    line = (json.dumps(row, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)  # read: to see a torn last line
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if _ends_torn(fd):  # a writer killed mid-line: start on a fresh line so this entry stays whole
                line = b"\n" + line
            view = memoryview(line)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _ends_torn(fd: int) -> bool:
    """True when the file does not end with a newline (its last line was cut short)."""
    size = os.fstat(fd).st_size
    return size > 0 and os.pread(fd, 1, size - 1) != b"\n"


def read_all(data_dir: Path) -> list[dict[str, Any]]:
    """Every entry, oldest first; a torn last line (a writer killed mid-write) is skipped."""
    path = feedback_path(data_dir)
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def export(data_dir: Path, fmt: str, out: Path | None = None) -> int:
    """Write all feedback as CSV or JSON Lines to `out` (stdout when None); returns 0, the CLI exit status."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"unknown format {fmt!r}; use csv or jsonl")
    entries = read_all(data_dir)
    if out is None:
        _write(entries, fmt, sys.stdout)
        return 0
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as fh:
        _write(entries, fmt, fh)
    return 0


def _write(entries: list[dict[str, Any]], fmt: str, fh: TextIO) -> None:
    if fmt == "jsonl":
        for e in entries:
            fh.write(json.dumps(e, ensure_ascii=False) + "\n")
        return
    writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for e in entries:
        writer.writerow(flatten(e))


def flatten(entry: dict[str, Any]) -> dict[str, str]:
    """One CSV row: citations as `[n] doc_id:start-end (score)` joined by `; `, settings spread out."""
    settings = entry.get("settings") or {}
    cites = "; ".join(
        f"[{c.get('n')}] {c.get('doc_id')}:{c.get('start')}-{c.get('end')} ({float(c.get('score', 0)):.2f})"
        for c in entry.get("citations") or []
    )
    filters = settings.get("filters") or {}
    row = {
        **{k: entry.get(k, "") for k in CSV_COLUMNS},
        "citations": cites,
        "index_name": settings.get("index_name", ""),
        "embedders": ",".join(settings.get("embedders") or []),
        "k": settings.get("k", ""),
        "filters": json.dumps({k: v for k, v in filters.items() if v}, ensure_ascii=False) if filters else "",
    }
    return {k: neutralise("" if v is None else str(v)) for k, v in row.items()}


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula (= + - @, tab, CR) gets a leading '."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
