"""The one service behind the CLI, the web UI and the HTTP API: ask, search, documents, feedback.

It owns what every front end would otherwise re-implement: filter parsing, upload admission, the admin
policy (through `rag.auth.Gate`), the audit log, and concurrency. Readers never wait for a writer: an
upload indexes on the caller's thread while questions keep answering from the index version they have;
the pipeline swaps the new version in when it is written.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from rag import feedback
from rag.auth import Principal, ServiceError
from rag.embed import Embedder, TokenStates, pools_tokens
from rag.ingest import IngestError, read, split_front_matter
from rag.pipeline import IngestReport, Pipeline, QuestionError
from rag.retrieve import Filters
from rag.settings import Settings
from rag.store import IndexNotFound, StoreError
from rag.types import Answer, Document, Draft, Hit, Token, Turn

UPLOAD_TYPES = (".txt", ".md", ".html", ".htm", ".pdf", ".docx")
META_FIELDS = ("title", "issue", "period", "date_start", "date_end", "language", "edition_of")

log = logging.getLogger(__name__)


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class InvalidQuestion(BadRequest):
    code = "invalid_question"


class InvalidFilter(BadRequest):
    """A malformed filter; `key` and `values` let a front end say it in its own language."""

    code = "invalid_filter"

    def __init__(self, message: str, key: str, **values: str) -> None:
        super().__init__(message)
        self.key, self.values = key, values


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Unavailable(ServiceError):
    status = 503
    code = "index_unavailable"


def parse_filters(
    language: str = "", issue: str = "", date_from: str = "", date_to: str = "", section: str = ""
) -> Filters:
    """Retrieval filters from form or request fields; InvalidFilter for values that would silently match nothing."""
    language = (language or "").strip()
    if language not in ("", "en", "zh"):
        raise InvalidFilter(f"language must be 'en' or 'zh', not {language!r}", "bad_language", value=language)
    dates = []
    for key, value in (("date_from", date_from), ("date_to", date_to)):
        value = (value or "").strip()
        if value:
            try:
                date.fromisoformat(value)
            except ValueError:
                raise InvalidFilter(
                    f"{key} {value!r} is not an ISO date YYYY-MM-DD", "bad_date", field=key, value=value
                ) from None
        dates.append(value)
    if dates[0] and dates[1] and dates[0] > dates[1]:
        raise InvalidFilter(
            f"date_from {dates[0]} is after date_to {dates[1]}", "bad_range", date_from=dates[0], date_to=dates[1]
        )
    return Filters(
        language=language, issue=str(issue or "").strip(), date_from=dates[0], date_to=dates[1], section=section or ""
    )


@dataclass(frozen=True, slots=True)
class Upload:
    """One file handed to `Service.add`: where it is now and the name it was uploaded as."""

    path: Path
    name: str
    meta: dict[str, str] = field(default_factory=dict)  # explicit metadata: replaces the stored values


@dataclass(frozen=True, slots=True)
class Refusal:
    """A file not indexed: `key` and `values` name the message (rag.render's table), `reason` says it in English."""

    name: str
    key: str  # "bad_type", "too_big", "unreadable"
    reason: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddResult:
    """What an upload did: the files indexed, the ones refused and the ingest report."""

    accepted: tuple[str, ...]
    refused: tuple[Refusal, ...]
    report: IngestReport | None


class Busy(ServiceError):
    """More questions in flight than the server takes at once: come back shortly (HTTP 503, Retry-After)."""

    status = 503
    code = "busy"

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


class Traffic:
    """Questions in flight, at most `limit` at once (more are refused with Busy, not queued without end);
    index work waits for a quiet moment (a bounded wait) before each slice."""

    def __init__(self, limit: int = 64) -> None:
        self._n = 0
        self.limit = limit
        self._quiet = threading.Condition()

    @contextlib.contextmanager
    def question(self) -> Iterator[None]:
        with self._quiet:
            if self._n >= self.limit:
                raise Busy(f"{self._n} questions are being answered; try again in a second")
            self._n += 1
        try:
            yield
        finally:
            with self._quiet:
                self._n -= 1
                self._quiet.notify_all()

    def wait_quiet(self, timeout: float) -> None:
        with self._quiet:
            self._quiet.wait_for(lambda: self._n == 0, timeout=timeout)


T = TypeVar("T")


class SerialisedEmbedder:
    """One call at a time into a model not known to be thread-safe, questions first.

    Indexing encodes in small slices and, before each, waits (up to `yield_seconds`) until no question is in
    flight: a question waits at most one slice however large the upload, and indexing still moves on.
    """

    def __init__(self, inner: Embedder, traffic: Traffic, slice_size: int = 8, yield_seconds: float = 2.0) -> None:
        self.inner, self.traffic = inner, traffic
        self.slice_size, self.yield_seconds = slice_size, yield_seconds
        self._lock = threading.Lock()

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self.traffic.question(), self._lock:
            return self.inner.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        parts = self._in_slices(texts, self.inner.encode_documents)
        return np.concatenate(parts) if parts else self.inner.encode_documents(texts)

    def token_pooling(self) -> bool:
        return pools_tokens(self.inner)

    def token_spans(self, text: str) -> Any:
        return self._pooling().token_spans(text)

    def encode_documents_with_states(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        parts = self._in_slices(texts, self._pooling().encode_documents_with_states)
        vectors = np.concatenate([v for v, _ in parts]) if parts else np.zeros((0, self.dim), np.float32)
        return vectors, [state for _, states in parts for state in states]

    def _pooling(self) -> TokenStates:
        if not pools_tokens(self.inner):
            raise TypeError(f"encoder {self.inner.id} gives no token states")
        return self.inner

    def _in_slices(self, texts: Sequence[str], encode: Callable[[Sequence[str]], T]) -> list[T]:
        """`encode` of `slice_size` texts at a time, each slice waiting for a quiet moment between questions."""
        out = []
        for i in range(0, len(texts), self.slice_size):
            self.traffic.wait_quiet(self.yield_seconds)
            with self._lock:
                out.append(encode(texts[i : i + self.slice_size]))
        return out


class Service:
    """Questions, documents and feedback over one pipeline, with the admin policy applied to every change."""

    def __init__(self, pipeline: Pipeline, settings: Settings | None = None, yield_seconds: float = 2.0) -> None:
        self.pipeline = pipeline
        self.settings = settings or pipeline.settings
        embedders = pipeline.embedders
        first = next(iter(embedders.values()), None)
        self.traffic = first.traffic if isinstance(first, SerialisedEmbedder) else Traffic(self.settings.max_pending)
        if not isinstance(first, SerialisedEmbedder):
            pipeline._embedders = {
                n: SerialisedEmbedder(e, self.traffic, 8, yield_seconds) for n, e in embedders.items()
            }
        self._writer = threading.Lock()  # one index change at a time; readers don't take it
        # Index changes run on one thread (its context copied, so UI progress still reports). Not niced: a
        # descheduled low-priority thread holding the GIL would stall every question (measured: 3.8 s).
        self._indexer = ThreadPoolExecutor(1, thread_name_prefix="indexer")

    # -- reading ----------------------------------------------------------------------------------
    def check_question(self, question: str) -> str:
        try:
            return self.pipeline.check_question(question)
        except QuestionError as exc:
            raise InvalidQuestion(str(exc)) from exc

    def ask(
        self, question: str, k: int | None = None, filters: Filters = Filters(), history: Sequence[Turn] = ()
    ) -> Answer:
        """Answer one question (or abstain); InvalidQuestion, Unavailable on failure. `history`: earlier turns."""
        q = self.check_question(question)
        k = self._k(k)
        try:
            with self.traffic.question():
                return self.pipeline.ask(q, k=k, filters=filters, history=history)
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc

    def events(
        self, question: str, k: int | None = None, filters: Filters = Filters(), history: Sequence[Turn] = ()
    ) -> Iterator[Draft | Token | Answer]:
        """The answer as it is made (`Pipeline.ask_stream`); the question is checked before the first event."""
        q = self.check_question(question)
        return self._events(q, self._k(k), filters, history)

    def _events(self, q: str, k: int, filters: Filters, history: Sequence[Turn]) -> Iterator[Draft | Token | Answer]:
        try:
            with self.traffic.question():
                yield from self.pipeline.ask_stream(q, k=k, filters=filters, history=history)
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc

    def stream(
        self, question: str, k: int | None = None, filters: Filters = Filters(), history: Sequence[Turn] = ()
    ) -> Iterator[dict[str, Any]]:
        """Server-side events of one answer: with an LLM, `draft` (the extractive answer's contract) and `delta`
        pieces of the LLM's text as it writes; otherwise `delta` pieces of the answer text. Then `answer` (the
        contract), whose `answer` is authoritative: verification may have removed sentences, or fallen back."""
        from rag.render import stream_prefixes

        if not history and not self.settings.llm_enabled:
            answer = self.ask(question, k, filters)
            sent = ""
            for prefix in stream_prefixes(answer.answer):
                yield {"event": "delta", "data": {"text": prefix[len(sent) :]}}
                sent = prefix
            yield {"event": "answer", "data": answer.to_dict()}
            return
        streamed = False
        for event in self.events(question, k, filters, history):
            if isinstance(event, Draft):
                yield {"event": "draft", "data": event.answer.to_dict()}
            elif isinstance(event, Token):
                streamed = True
                yield {"event": "delta", "data": {"text": event.text}}
            else:
                if not streamed:
                    sent = ""
                    for prefix in stream_prefixes(event.answer):
                        yield {"event": "delta", "data": {"text": prefix[len(sent) :]}}
                        sent = prefix
                yield {"event": "answer", "data": event.to_dict()}

    def search(self, question: str, k: int | None = None, filters: Filters = Filters()) -> list[Hit]:
        q = self.check_question(question)
        try:
            with self.traffic.question():
                return self.pipeline.search(q, k=self._k(k), filters=filters)
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc

    def documents(self) -> dict[str, Document]:
        try:
            return self.pipeline.index().documents
        except StoreError as exc:
            raise Unavailable(str(exc)) from exc

    def document(self, doc_id: str) -> Document:
        doc = self.documents().get(doc_id)
        if doc is None:
            raise NotFound(f"no newsletter {doc_id!r} in the index")
        return doc

    def stats(self) -> dict[str, int]:
        index = self.pipeline.index()
        return {"documents": len(index.documents), "chunks": len(index.chunks), "sentences": len(index.sentences)}

    def _k(self, k: int | None) -> int:
        if k is None:
            return self.settings.k
        if not 1 <= int(k) <= 50:
            raise BadRequest(f"k must be between 1 and 50, not {k}")
        return int(k)

    # -- changing the index (admin) ----------------------------------------------------------------
    def add(
        self,
        principal: Principal,
        uploads: Sequence[Upload],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> AddResult:
        """Admit, store under `<data_dir>/uploads/` and index newsletters; needs the admin scope."""
        principal.require("admin")
        s = self.settings
        if not uploads:
            raise BadRequest("no file to upload")
        if len(uploads) > s.max_upload_files:
            raise BadRequest(f"{len(uploads)} files at once; the limit is {s.max_upload_files}")
        folder = Path(s.data_dir) / "uploads"
        staging = folder / f".staging-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True, exist_ok=True)
        refused: list[Refusal] = []
        accepted: list[Path] = []
        try:
            with self._writer:
                known = self.documents()
                for up in uploads:
                    name = safe_name(up.name)
                    refusal = self._admit(up.path, name, staging)
                    if refusal is not None:
                        refused.append(refusal)
                        continue
                    self._keep_metadata(staging / name, known.get(Path(name).stem), up.meta)
                    for f in staging.iterdir():
                        os.replace(f, folder / f.name)
                    accepted.append(folder / name)
                report = None
                if accepted:
                    report = self._on_indexer(self._ingest, accepted, progress or _quiet)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if report is not None:
            refused += [_unreadable(e.path.name, e.reason) for e in report.errors]
        names = tuple(p.name for p in accepted)
        self.audit(principal, "add", files=list(names), refused=[r.name for r in refused])
        return AddResult(names, tuple(refused), report)

    def remove(self, principal: Principal, doc_id: str) -> IngestReport:
        """Remove one newsletter; needs the admin scope. NotFound when it is not indexed."""
        principal.require("admin")
        with self._writer:
            try:
                report = self._on_indexer(self._remove, doc_id)
            except KeyError as exc:
                raise NotFound(str(exc.args[0] if exc.args else exc)) from None
            except IndexNotFound as exc:
                raise Unavailable(str(exc)) from exc
        self.audit(principal, "remove", doc_id=doc_id)
        return report

    def _on_indexer(self, fn: Callable[..., IngestReport], *args: Any) -> IngestReport:
        return self._indexer.submit(contextvars.copy_context().run, fn, *args).result()

    def _ingest(self, paths: list[Path], progress: Callable[[str, int, int], None]) -> IngestReport:
        with self.pipeline.swapping():
            report = self.pipeline.ingest(paths, progress=progress, replace=True)  # an upload is a new version
            self.pipeline.index()  # open the new version now, so no question pays for it
        return report

    def _remove(self, doc_id: str) -> IngestReport:
        with self.pipeline.swapping():
            report = self.pipeline.remove([doc_id])
            self.pipeline.index()
        return report

    def _admit(self, src: Path, name: str, staging: Path) -> Refusal | None:
        """None when `src` may be indexed (it is then copied to staging/name), else why not."""
        ext = Path(name).suffix.lower()
        if ext not in UPLOAD_TYPES or name.lower().endswith(".meta.json"):
            ext = ext or "(none)"
            return Refusal(name, "bad_type", f"unsupported file type {ext}", {"name": name, "ext": ext})
        size = src.stat().st_size / 1024 / 1024
        mb = self.settings.max_upload_mb
        if size > mb:
            return Refusal(
                name, "too_big", f"{size:.1f} MB; the limit is {mb} MB", {"name": name, "size": size, "mb": mb}
            )
        sniffed = _sniff(src, ext)
        if sniffed:
            return _unreadable(name, sniffed)
        shutil.copyfile(src, staging / name)
        try:
            read(staging / name)  # decodes and parses: binary or corrupt files raise IngestError
        except IngestError as exc:
            return _unreadable(name, exc.reason)
        return None

    @staticmethod
    def _keep_metadata(path: Path, previous: Document | None, given: dict[str, str]) -> None:
        """A sidecar: a re-upload keeps the stored title, issue and period unless the file or caller sets them."""
        explicit: set[str] = set()
        if path.suffix.lower() == ".md":
            front, _ = split_front_matter(path.read_text("utf-8", errors="replace"))
            explicit = {k for k, v in front.items() if v}
        kept = dataclasses.asdict(previous.meta) if previous is not None else {}
        meta = {k: v for k, v in kept.items() if v and k not in explicit}
        meta.update({k: str(v) for k, v in given.items() if k in META_FIELDS and str(v).strip()})
        # Always written (even empty): it replaces a sidecar an earlier upload of this name left behind.
        sidecar = path.with_name(path.stem + ".meta.json")
        sidecar.write_text(json.dumps(meta, ensure_ascii=False), "utf-8")

    # -- feedback and audit ---------------------------------------------------------------------------
    def feedback(self, entry: dict[str, Any]) -> None:
        """Store one rating or comment; the comment is length-limited (BadRequest beyond the limit)."""
        comment = str(entry.get("comment") or "").strip()
        if len(comment) > self.settings.max_comment_chars:
            raise BadRequest(
                f"the comment is {len(comment)} characters; the limit is {self.settings.max_comment_chars}"
            )
        if entry.get("rating") not in (None, "up", "down"):
            raise BadRequest("rating must be 'up' or 'down'")
        feedback.record(self.settings.data_dir, {**entry, "comment": comment})

    def audit(self, principal: Principal, action: str, **details: Any) -> None:
        """One JSON line in `<data_dir>/audit.jsonl`: who did what, when, from where."""
        row = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "who": principal.name,
            "address": principal.address,
            "action": action,
            **details,
        }
        path = Path(self.settings.data_dir) / "audit.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        log.info("audit %s", row)


def _quiet(stage: str, done: int, total: int) -> None:
    return None


def _unreadable(name: str, reason: str) -> Refusal:
    return Refusal(name, "unreadable", reason, {"name": name, "reason": reason})


def safe_name(name: str) -> str:
    """A file name safe to store: no folders, no leading dots, only word characters, dots and dashes."""
    stem = re.sub(r"[^\w.\-]+", "_", Path(name).name).lstrip("._")
    return stem or "upload.txt"


def _sniff(path: Path, ext: str) -> str:
    """ "" when the bytes fit the extension (PDF header, Word zip); text formats are judged by `read`."""
    with open(path, "rb") as fh:
        head = fh.read(1024)
    if ext == ".pdf" and not head.lstrip().startswith(b"%PDF-"):
        return "the file is not a PDF (no %PDF header)"
    if ext == ".docx":
        try:
            with zipfile.ZipFile(path) as z:
                if "word/document.xml" not in z.namelist():
                    return "the file is not a Word .docx document"
        except zipfile.BadZipFile:
            return "the file is not a Word .docx document (not a zip archive)"
    return ""
