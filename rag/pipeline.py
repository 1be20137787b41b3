"""The one place the stages are wired: ingest → clean → chunk → embed → index → retrieve → answer."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import numpy as np

from rag import embcache, lang, pooling
from rag.answer import UNSUPPORTED, AnswerSettings, compose
from rag.answer_model import load as load_answer_model
from rag.backend import IndexStore, store_for
from rag.chunk import BLOCK, ChunkSettings, chunk, split_sentences
from rag.clean import clean
from rag.embcache import EmbeddingCache
from rag.embed import Embedder, load_embedder, pools_tokens
from rag.ingest import IngestError, discover_sources, read_many
from rag.priority import run_lowered
from rag.retrieve import Filters, FusionSettings, search
from rag.scope import unknown_names
from rag.settings import Settings
from rag.store import (
    FormatOutdated,
    Index,
    IndexNotFound,
    Manifest,
    clean_stale,
    current_version,
    list_indexes,
    merge_segments,
    recover_legacy_swap,
    stored_documents,
    write_lock,
)
from rag.types import Answer, Chunk, Document, Draft, Hit, Token, Turn

if TYPE_CHECKING:
    from rag.llm import Generator

Progress = Callable[[str, int, int], None]  # (stage, done, total)

log = logging.getLogger(__name__)


class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long); the message says why."""


class NothingToIngest(ValueError):
    """The paths given hold no newsletter file at all (an empty folder, a folder of other files)."""


class RemovalRefused(RuntimeError):
    """A command would remove newsletters from the index and that was not confirmed; nothing was written."""

    def __init__(self, index_name: str, doc_ids: Sequence[str]) -> None:
        self.doc_ids = tuple(doc_ids)
        shown = ", ".join(self.doc_ids[:20]) + (f" and {len(self.doc_ids) - 20} more" if len(self.doc_ids) > 20 else "")
        super().__init__(
            f"this would remove {len(self.doc_ids)} newsletter(s) from index {index_name!r}: {shown}; "
            "nothing was changed. Run it again with --yes to remove them"
        )


LANGUAGES = ("en", "zh")  # languages a newsletter can be indexed in (zh covers Simplified and Traditional)
STATUSES = ("added", "updated", "unchanged", "skipped")
Confirm = Callable[[Sequence[str]], bool]  # asked with the doc_ids a command would remove


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file of an ingest: added | updated | unchanged | skipped (with the reason)."""

    path: str
    status: str
    doc_id: str = ""
    reason: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "doc_id": self.doc_id, "status": self.status, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest or removal changed in the index, file by file."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: tuple[IngestError, ...] = ()
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    files: tuple[FileOutcome, ...] = ()  # one per file given (skipped ones included), in the order read
    reindexed: tuple[str, ...] = ()  # held documents re-embedded by a rebuild (kept, not given again)
    written: bool = False  # False when nothing changed (or nothing could be indexed): no new version

    @property
    def skipped(self) -> tuple[FileOutcome, ...]:
        return tuple(f for f in self.files if f.status == "skipped")


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _writer(method: Callable[Concatenate[Pipeline, _P], _R]) -> Callable[Concatenate[Pipeline, _P], _R]:
    """A method that writes the index, run `settings.writer_nice` levels below its caller's priority
    (rag/priority.py), so that questions answered meanwhile keep the CPU; a writer called by another runs in place."""

    @functools.wraps(method)
    def lowered(self: Pipeline, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return run_lowered(lambda: method(self, *args, **kwargs), self.settings.writer_nice)

    return lowered


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def decode_question(question: str) -> str:
    """A question as text that can be printed and encoded: bytes smuggled in as surrogates (invalid UTF-8 in
    argv, `surrogateescape`) are decoded with U+FFFD replacement, lone surrogates become U+FFFD, and control
    characters become spaces.
    """
    if not isinstance(question, str):
        raise QuestionError(f"the question must be text, not {type(question).__name__} / 问题必须是文本")
    question = _LONE_SURROGATE.sub("\ufffd", question)  # not escaped bytes: just broken text
    question = question.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return _CONTROL.sub(" ", question)


_LONE_SURROGATE = re.compile("[\ud800-\udc7f\udd00-\udfff]")  # all but U+DC80–U+DCFF (escaped bytes)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class Evidence:
    """A question as the answer stage reads it: what was retrieved for it, from which index version."""

    index: Index
    query: str  # the question as matched (Traditional converted to Simplified)
    language: str  # the asker's language
    vectors: dict[str, np.ndarray]  # the question per embedder
    hits: tuple[Hit, ...]
    timings: dict[str, float]  # ms: load, embed, retrieve


class Pipeline:
    """Builds, updates and queries one index with one set of settings; models load on first use."""

    def __init__(
        self, settings: Settings, embedders: dict[str, Embedder] | None = None, generator: Generator | None = None
    ) -> None:
        """`generator` writes generated answers (default: a client of `settings.llm_base_url`, made on first use)."""
        self.settings = settings
        self._embedders = embedders
        self._index: Index | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._index_stamp: tuple[int, int] | None = None
        self._reopen = threading.RLock()  # one thread opens a new index version; the others keep the old one
        self._llm = generator
        self._store: IndexStore | None = None

    @property
    def store(self) -> IndexStore:
        """Where the index's vectors live (`settings.index_backend`, rag/backend.py)."""
        if self._store is None:
            self._store = store_for(self.settings)
        return self._store

    def _open(self) -> Index:
        return self.store.open(self.settings.index_dir, tuple(self.embedders), self.settings.lexical)

    # -- models ---------------------------------------------------------------------------------
    @property
    def embedders(self) -> dict[str, Embedder]:
        if self._embedders is None:
            self._embedders = {spec: load_embedder(spec) for spec in self.settings.embedders}
        return self._embedders

    def warm_up(self) -> None:
        """Load every model and the index now, so the first question is as fast as the rest."""
        index = self.index()
        self.answer_settings()  # the answer model
        self._query_vectors("warm up", "en")  # every model, and the thread that runs them side by side
        if index.lexical is not None:
            if hasattr(index.lexical, "warm_up"):  # BM25's compiled loops, whatever the warm-up question matches
                index.lexical.warm_up()
            index.lexical.search("warm up 预热", k=1)
        self.search("warm up")  # the search structures (HNSW graphs are read at the first search)
        unknown_names("Warm up 预热北京", index.corpus)  # jieba's part-of-speech tagger loads in about a second
        lang.to_traditional("预热")  # OpenCC's dictionaries
        from wordfreq import zipf_frequency

        from rag.features import general_weight
        from rag.focus import focus

        zipf_frequency("warm", "en")  # word frequencies (common-word checks of names and pinyin)
        for word, language in (("warm", "en"), ("预热", "zh")):
            general_weight(word, language)  # the answer features' word-frequency tables (about a second)
        focus("Which seminar?")  # lemminflect's lexicon (the parts of speech of a question's words)

    # -- index ----------------------------------------------------------------------------------
    def index(self) -> Index:
        """The opened index (reopened when another process wrote a new version); built from the sample if absent.

        Readers never wait for a writer: while a new version is being swapped in or opened by another thread,
        callers that already hold a version keep answering from it.
        """
        current = self._index
        if current is not None:
            stamp = current_version(self.settings.index_dir)
            if stamp is None or stamp == self._index_stamp:
                return current
            if not self._reopen.acquire(blocking=False):
                return current
        else:
            self._reopen.acquire()
        try:
            return self._open_current()
        finally:
            self._reopen.release()

    @contextlib.contextmanager
    def swapping(self) -> Iterator[None]:
        """While a writer writes and opens the next version, readers holding a version keep answering from it."""
        with self._reopen:
            yield

    def _open_current(self) -> Index:
        folder = self.settings.index_dir
        stamp = current_version(folder)
        if self._index is not None and stamp == self._index_stamp:
            return self._index
        try:
            index = self._open()
        except FormatOutdated as exc:  # derived data: rebuild it from the cleaned documents it stores
            log.warning("%s; rebuilding it from the documents it stores", exc)
            self.update([], rebuild=True)
            index = self._open()
        except IndexNotFound:
            if self.settings.index_name != "default":
                existing = list_indexes(self.settings.index_root)
                raise IndexNotFound(
                    f"unknown index {self.settings.index_name!r}; existing: {', '.join(existing) or 'none'}"
                ) from None
            self.ingest([self.settings.corpus])
            index = self._open()
        # The stamp read before opening: if a writer swapped meanwhile, the next call opens again.
        self._index, self._index_stamp = index, stamp if stamp is not None else current_version(folder)
        return index

    @_writer
    def ingest(
        self,
        paths: Iterable[Path],
        progress: Progress = _no_progress,
        rebuild: bool = False,
        replace_all: bool = False,
        confirm: Confirm | None = None,
        replace: bool = False,
    ) -> IngestReport:
        """Add or update newsletter files, each with its own outcome; a bad file never stops the others.

        Unchanged documents keep their vectors. `rebuild` re-embeds every document the index holds plus the
        ones given; `replace_all` makes the index hold exactly the files given (removals go through `confirm`);
        `replace` lets a file take over the doc_id another path holds (an admin uploading a new version).
        The work runs `settings.writer_nice` levels below the caller's priority (rag/priority.py).
        """
        t0 = time.perf_counter()
        paths = [Path(os.path.abspath(p)) for p in paths]  # a document's path is part of its identity
        sources = discover_sources(paths)
        if not sources:
            raise NothingToIngest(
                f"no newsletter files (.txt .md .html .pdf .docx) in {', '.join(map(str, paths)) or 'nothing'}; "
                "the index is unchanged"
            )
        raws, errors = read_many(sources, max_bytes=self.settings.max_document_mb * 2**20)
        docs: list[Document] = []
        for i, raw in enumerate(raws):
            progress("clean", i + 1, len(raws))
            try:
                doc = clean(raw)
            except Exception as exc:  # a document the cleaner cannot handle must not stop the batch
                errors.append(IngestError(Path(raw.path), f"cannot clean: {type(exc).__name__}: {exc}"))
                continue
            if doc.language not in LANGUAGES:
                reason = f"language {doc.language!r} is not supported (newsletters in en, zh or zh-hant)"
                errors.append(IngestError(Path(raw.path), reason))
                continue
            docs.append(doc)
        report = self.update(docs, progress, rebuild=rebuild, replace_all=replace_all, confirm=confirm, replace=replace)
        skipped = {str(e.path): FileOutcome(str(e.path), "skipped", reason=e.reason) for e in errors}
        by_path = {f.path: f for f in report.files}
        order = [str(s.path) for s in sources]
        files = [by_path.get(p) or skipped.get(p) for p in order]
        files += [f for f in (*report.files, *skipped.values()) if f.path not in order]  # not found via sources
        errors += [IngestError(Path(f.path), f.reason) for f in report.skipped]
        return dataclasses.replace(
            report,
            errors=tuple(errors),
            files=tuple(dict.fromkeys(f for f in files if f is not None)),
            seconds=time.perf_counter() - t0,
        )

    @_writer
    def update(
        self,
        docs: Sequence[Document],
        progress: Progress = _no_progress,
        rebuild: bool = False,
        replace_all: bool = False,
        replace: bool = False,
        confirm: Confirm | None = None,
    ) -> IngestReport:
        """Put cleaned documents into the index, embedding only new or changed ones (see `ingest`).

        A document whose doc_id the index holds from another file is refused (skipped), never overwritten,
        unless `replace_all` (the index is being made equal to the files given).
        """
        t0 = time.perf_counter()
        folder = self.settings.index_dir
        with write_lock(folder):
            recover_legacy_swap(folder)
            old = None if rebuild else self._open_existing()
            held = {d.doc_id: d for d in stored_documents(folder)} if rebuild else dict(old.documents) if old else {}
            merged = {} if replace_all else dict(held)
            outcomes: list[FileOutcome] = []
            given: dict[str, Document] = {}
            for doc in docs:
                prev = held.get(doc.doc_id)
                other = given.get(doc.doc_id) or (
                    prev if prev and not (replace_all or replace) and _moved(prev, doc) else None
                )
                if other is not None:
                    outcomes.append(FileOutcome(doc.path, "skipped", doc.doc_id, _collision(doc.doc_id, other.path)))
                    continue
                given[doc.doc_id] = doc
                if prev is None:
                    status = "added"
                elif prev.content_hash == doc.content_hash and not _moved(prev, doc):
                    status = "unchanged"  # (a file that moved, with --prune, is "updated": its path is rewritten)
                else:
                    status = "updated"
                outcomes.append(FileOutcome(doc.path, status, doc.doc_id))
                merged[doc.doc_id] = doc
            removed = sorted(set(held) - set(merged))
            if removed and confirm is not None and not confirm(removed):
                raise RemovalRefused(self.settings.index_name, removed)
            chunker = ChunkSettings(size=self.settings.chunk_size, overlap=self.settings.chunk_overlap)
            changed = any(f.status in ("added", "updated") for f in outcomes) or removed or rebuild
            if old is not None and not _reusable(old, chunker, self._sentence_vectors()):
                changed = True  # vectors made another way: everything is embedded again
            n_chunks, embedded, written = _n_live(old), 0, False
            if changed and merged:
                n_chunks, embedded, dropped = self._write(merged, old, progress)
                written = True
                for i, f in enumerate(outcomes):
                    if f.doc_id in dropped:
                        outcomes[i] = dataclasses.replace(f, status="skipped", reason=dropped[f.doc_id])
            elif changed and old is not None:  # every newsletter removed: an empty index
                n_chunks, embedded, _ = self._write({}, old, progress)
                written = True
            # Whatever a killed run left: temp builds, unreferenced versions, checkpoints (all finished now).
            clean_stale(folder)
            embcache.clear(folder)
        self._index_stamp = None  # reopen on next use; until then readers keep the old version

        def ids(status: str) -> tuple[str, ...]:
            return tuple(f.doc_id for f in outcomes if f.status == status)

        return IngestReport(
            added=ids("added"),
            updated=ids("updated"),
            unchanged=ids("unchanged"),
            removed=tuple(removed),
            chunks=n_chunks,
            embedded_chunks=embedded,
            seconds=time.perf_counter() - t0,
            files=tuple(outcomes),
            reindexed=tuple(sorted(set(merged) - set(given))) if rebuild else (),
            written=written,
        )

    @_writer
    def remove(self, doc_ids: Sequence[str], confirm: Confirm | None = None) -> IngestReport:
        """Remove newsletters by id (after `confirm`, when given); the others keep their vectors."""
        t0 = time.perf_counter()
        with write_lock(self.settings.index_dir):
            recover_legacy_swap(self.settings.index_dir)
            old = self._open_existing()
            if old is None:
                existing = list_indexes(self.settings.index_root)
                raise IndexNotFound(
                    f"unknown index {self.settings.index_name!r}; existing: {', '.join(existing) or 'none'}"
                )
            missing = [d for d in doc_ids if d not in old.documents]
            if missing:
                raise KeyError(
                    f"not in index {self.settings.index_name!r}: {', '.join(missing)}; "
                    f"it holds: {', '.join(sorted(old.documents))}"
                )
            doc_ids = list(dict.fromkeys(doc_ids))
            if confirm is not None and not confirm(doc_ids):
                raise RemovalRefused(self.settings.index_name, doc_ids)
            docs = {k: v for k, v in old.documents.items() if k not in doc_ids}
            n, _, _ = self._write(docs, old, _no_progress)
        self._index_stamp = None  # reopen on next use; until then readers keep the old version
        return IngestReport(removed=tuple(doc_ids), chunks=n, seconds=time.perf_counter() - t0, written=True)

    def _open_existing(self) -> Index | None:
        try:
            return self._open()
        except IndexNotFound:
            return None

    def _write(
        self, docs: dict[str, Document], old: Index | None, progress: Progress
    ) -> tuple[int, int, dict[str, str]]:
        """Chunk, embed and write `docs` as the index's next version. Hold the write lock.

        Returns (chunks, passages embedded, {doc_id: reason} of documents that could not be chunked — left out,
        or kept as the index had them).
        """
        s = self.settings
        chunker = ChunkSettings(size=s.chunk_size, overlap=s.chunk_overlap)
        if old is not None and not _reusable(old, chunker, self._sentence_vectors()):
            old = None  # chunks cut differently, or sentence vectors made another way: nothing can be reused
        # A segmented folder index: write only what changed (a backend that keeps vectors elsewhere rewrites)
        base = old if old is not None and old.parts and getattr(self.store, "incremental", False) else None
        all_docs = dict(docs)
        if base is not None:
            # new or changed documents, and moved ones (their new path; their rows are copied, not re-embedded)
            docs = {d: doc for d, doc in docs.items() if not _same(base, doc) or _moved(base.documents[d], doc)}
        chunks: list[Chunk] = []
        sentences: list[tuple[str, int, int]] = []
        reuse_chunk_rows: list[int | None] = []
        reuse_sentence_rows: list[int | None] = []
        dropped: dict[str, str] = {}
        old_rows = _rows_by_doc(old) if old else ({}, {})
        docs = dict(docs)
        todo = [d for d in sorted(docs) if not _same(old, docs[d])]
        done = 0
        for doc_id in sorted(docs):
            doc = docs[doc_id]
            if doc_id in todo:
                done += 1
                try:
                    new_chunks = chunk(doc, chunker, _big_doc_progress(progress, doc))
                    spans = split_sentences(doc.text)
                except Exception as exc:  # one document the chunker fails on must not sink the others
                    dropped[doc_id] = f"cannot chunk: {type(exc).__name__}: {exc}"
                    log.warning("%s: %s", doc.path or doc_id, dropped[doc_id])
                    progress("chunk", done, len(todo))
                    if old is None or base is not None or doc_id not in old.documents:
                        del docs[doc_id]  # (segmented: the indexed version stays in its segment)
                        continue
                    docs[doc_id] = old.documents[doc_id]  # an update that fails keeps the indexed version
                    dropped[doc_id] += "; the indexed version is kept"
                else:
                    progress("chunk", done, len(todo))
                    chunks.extend(new_chunks)
                    sentences.extend((doc_id, a, b) for a, b in spans)
                    # An update: passages and sentences whose text the indexed version has keep its vectors
                    # (a vector depends on its text only); a new newsletter has none.
                    was_chunks, was_sentences = _rows_of_text(old, doc_id, old_rows)
                    reuse_chunk_rows.extend(was_chunks.get(c.text) for c in new_chunks)
                    reuse_sentence_rows.extend(was_sentences.get(doc.text[a:b]) for a, b in spans)
                    continue
            assert old is not None
            crow, srow = old_rows[0][doc_id], old_rows[1][doc_id]
            chunks.extend(old.chunks[r] for r in crow)
            reuse_chunk_rows.extend(crow)
            sentences.extend(old.sentences[r] for r in srow)
            reuse_sentence_rows.extend(srow)
        # Re-number ordinals/ids stay as produced per document; rows are positions in this list.
        embedded = sum(r is None for r in reuse_chunk_rows)
        lexical_job = None
        if s.lexical:
            # BM25 (Python, jieba's and CC-CEDICT's first use included) side by side with the encoders (torch
            # and numpy, which release the GIL): it needs the chunks' text only.
            from rag.lexical import LexicalIndex

            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer-lexical")
            lexical_job = pool.submit(
                LexicalIndex.build, [c.text for c in chunks], [lang.base(c.language) for c in chunks]
            )
            pool.shutdown(wait=False)
        vectors, sentence_vectors = {}, {}
        passage_texts = [c.text for c in chunks]
        sentence_texts = [docs[d].text[a:b] for d, a, b in sentences]
        for name, emb in self.embedders.items():
            pooled: dict[int, pooling.Pooled] = {}
            if self._sentence_vectors() == "pooled" and pools_tokens(emb):
                pooled = pooling.plan(chunks, reuse_chunk_rows, sentences, reuse_sentence_rows, emb.token_spans)
            vectors[name], sentence_vectors[name] = self._embed(
                emb,
                [
                    (passage_texts, reuse_chunk_rows, old.vectors[name] if old else None),
                    (
                        [pooled[i].key if i in pooled else t for i, t in enumerate(sentence_texts)],
                        reuse_sentence_rows,
                        old.sentence_vectors[name] if old else None,
                    ),
                ],
                progress,
                f"embed ({name})",
                cache=EmbeddingCache(s.index_dir, name),
                pooled={p.key: p for p in pooled.values()},
            )
        lexical = None
        if lexical_job is not None:
            progress("lexical index", 0, 1)
            lexical = lexical_job.result()
            progress("lexical index", 1, 1)
        if base is not None:
            for doc_id in dropped:  # an update that could not be chunked keeps the indexed version
                if doc_id in base.documents:
                    all_docs[doc_id] = base.documents[doc_id]
                else:
                    all_docs.pop(doc_id, None)
            docs = {d: doc for d, doc in docs.items() if d not in dropped}
        else:
            all_docs = docs
        deleted = set(base.documents) - {d for d in all_docs if d not in docs} if base is not None else set()
        n_chunks, n_sentences = len(chunks), len(sentences)
        if base is not None:  # plus the rows the new version keeps from its older segments
            kept_chunks, kept_sentences = old_rows if old is base else _rows_by_doc(base)
            n_chunks += sum(len(rows) for d, rows in kept_chunks.items() if d not in deleted)
            n_sentences += sum(len(rows) for d, rows in kept_sentences.items() if d not in deleted)
        manifest = Manifest(
            embedders=tuple(self.embedders),
            dims={name: int(v.shape[1]) for name, v in vectors.items()},
            lexical=s.lexical,
            chunker=chunker.as_dict(),
            documents={d: all_docs[d].content_hash for d in sorted(all_docs)},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            counts={"documents": len(all_docs), "chunks": n_chunks, "sentences": n_sentences},
            answer_model=self.answer_settings().model.record(),
            merge={"max_segments": s.max_segments, "max_chunks": s.merge_max_chunks},
            writer={"nice": s.writer_nice},
            sentence_vectors=self._sentence_vectors(),
        )
        index = Index(s.index_dir, manifest, docs, chunks, vectors, sentences, sentence_vectors, lexical, None)
        if base is not None:  # the folder backend: one new segment, tombstones, then the merge policy
            self.store.write(index, base, deleted)  # type: ignore[call-arg]
            merge_segments(s.index_dir, tuple(self.embedders), s.lexical, s.max_segments, s.merge_max_chunks)
        else:
            self.store.write(index)
        embcache.clear(s.index_dir)  # the index now holds every vector the checkpoints held
        return n_chunks, embedded, dropped

    def _sentence_vectors(self) -> str:
        """How this writer makes sentence vectors: "pooled" when the setting asks for it and an encoder gives its
        token states (e5 on torch), else "encoded" (what the manifest records, so an index is re-embedded only
        when its vectors would really change)."""
        asked = pooling.check(self.settings.sentence_vectors)
        return "pooled" if asked == "pooled" and any(pools_tokens(e) for e in self.embedders.values()) else "encoded"

    @staticmethod
    def _embed(
        emb: Embedder,
        parts: Sequence[tuple[list[str], list[int | None], np.ndarray | None]],
        progress: Progress,
        stage: str,
        batch: int = 256,  # big enough for e5 to sort by length and keep both cores busy
        cache: EmbeddingCache | None = None,
        pooled: dict[str, pooling.Pooled] | None = None,
    ) -> list[np.ndarray]:
        """Vectors for each part's texts (`texts`, `reuse`: a row of `old_vectors` or None, `old_vectors`): rows
        of unchanged documents copied, texts an interrupted ingest finished read from `cache`, the rest embedded
        together, each distinct text once (passages and sentences in the same length-sorted batches; a
        sentence that is a whole passage is not embedded twice), each batch checkpointed into `cache`.

        A text that is a key of `pooled` is not encoded: its vector is pooled from the token states of its
        passage, which is run (again, if the cache held its vector) in the same batch and checkpoint.
        """
        dims = {v.shape[1] for _, _, v in parts if v is not None}
        dim = dims.pop() if len(dims) == 1 else None
        todo = list(dict.fromkeys(texts[i] for texts, reuse, _ in parts for i, r in enumerate(reuse) if r is None))
        fresh: dict[str, np.ndarray] = {}
        if cache is not None and todo:
            hit = cache.lookup(todo, dim)
            fresh.update((todo[j], v) for j, v in hit.items())
            todo = [t for t in todo if t not in fresh]
        waiting = pooling.by_passage([pooled[t] for t in todo if pooled and t in pooled])
        todo = [t for t in todo if not pooled or t not in pooled]
        queued = set(todo)
        todo += [p for p in waiting if p not in queued]  # passages already cached: run for their states
        for b in range(0, len(todo), batch):
            some = todo[b : b + batch]
            if any(t in waiting for t in some) and pools_tokens(emb):
                out, states = emb.encode_documents_with_states(some)
                keys, made = pooling.pool_batch(some, states, waiting)
                some, out = [*some, *keys], np.concatenate([np.asarray(out, np.float32), made])
            else:
                out = np.asarray(emb.encode_documents(some), dtype=np.float32)
            if cache is not None:
                cache.add(some, out)  # a batch's pooled sentences with their passages, in one checkpoint
            fresh.update(zip(some, out, strict=True))
            progress(stage, min(b + batch, len(todo)), len(todo))
        if dim is None:
            dim = next(iter(fresh.values())).shape[0] if fresh else emb.dim
        arrays = []
        for texts, reuse, old_vectors in parts:
            out_arr = np.zeros((len(texts), dim), np.float32)
            for i, r in enumerate(reuse):
                if r is None:
                    out_arr[i] = fresh[texts[i]]
            kept = [(i, r) for i, r in enumerate(reuse) if r is not None]
            if kept:  # one gather (old_vectors may be rows fetched from a search engine, rag.milvus_store)
                out_arr[[i for i, _ in kept]] = old_vectors[np.array([r for _, r in kept], np.int64)]  # type: ignore[index]
            arrays.append(out_arr)
        return arrays

    # -- questions ------------------------------------------------------------------------------
    def check_question(self, question: str) -> str:
        """The question, decoded (`decode_question`) and stripped; raises QuestionError with a clear message
        when it can't be asked."""
        q = decode_question(question or "").strip()
        if not q:
            raise QuestionError("the question is empty: type a question in English or Chinese / 问题为空")
        if len(q) > self.settings.max_question_chars:
            raise QuestionError(
                f"the question is {len(q)} characters long; the limit is {self.settings.max_question_chars} "
                f"/ 问题过长（{len(q)} 字符，上限 {self.settings.max_question_chars}）"
            )
        return q

    def search(self, question: str, k: int | None = None, filters: Filters = Filters()) -> list[Hit]:
        """The ranked passages for a question (editions folded), without composing an answer."""
        q = self.check_question(question)
        language = lang.detect(q)
        qv = self._query_vectors(q, language)
        return search(
            self.index(),
            self._query_text(q, language),
            qv,
            self.fusion(),
            filters,
            k or self.settings.k,
            language,
        )

    def ask(
        self,
        question: str,
        k: int | None = None,
        filters: Filters = Filters(),
        history: Sequence[Turn] = (),
        llm: bool = True,
    ) -> Answer:
        """Answer one question from the index, with citations, or abstain.

        `history` holds the conversation's earlier turns (a follow-up is read with them); with `llm` and an LLM
        configured (`llm_base_url`), a confident answer is written by the LLM and verified (`ask_stream`).
        """
        if not history and not (llm and self.settings.llm_enabled):
            return self._extract(self.check_question(question), k, filters)
        final: Answer | None = None
        for event in self.ask_stream(question, k, filters, history, llm):
            if isinstance(event, Answer):
                final = event
        assert final is not None
        return final

    def ask_stream(
        self,
        question: str,
        k: int | None = None,
        filters: Filters = Filters(),
        history: Sequence[Turn] = (),
        llm: bool = True,
    ) -> Iterator[Draft | Token | Answer]:
        """The answer as it is made: with an LLM writing it, a Draft (the extractive answer), the LLM's Tokens,
        then the verified Answer; otherwise just the Answer. The last event is always the Answer."""
        q = self.check_question(question)
        use_llm = llm and self.settings.llm_enabled
        resolved, alone = self._resolution(q, history, use_llm) if history else (q, None)
        unchanged = k is None and filters == Filters()  # then the check asked exactly this
        answer = alone if alone is not None and unchanged else self._extract(q, k, filters, resolved)
        if not use_llm or answer.verdict != "answer":
            yield answer
            return
        from rag import generate

        yield Draft(answer)
        threshold = self.settings.llm_support_threshold
        yield from generate.generate(
            answer,
            self.index(),
            self.embedders,
            self._generator(),
            threshold if threshold >= 0 else generate.SUPPORT_THRESHOLD,
        )

    def _resolve(self, question: str, history: Sequence[Turn], use_llm: bool) -> str:
        """A follow-up as a standalone question (see `_resolution`)."""
        return self._resolution(question, history, use_llm)[0]

    def _resolution(self, question: str, history: Sequence[Turn], use_llm: bool) -> tuple[str, Answer | None]:
        """A follow-up as a standalone question: condensed by the LLM when there is one (and it manages),
        else the question with the previous turns' key terms (rag.followup), unless the question alone already
        gets a confident answer: then it stands on its own (a change of topic, or a follow-up that names its
        subject), and carrying the previous question's words could only pull retrieval back to the old topic;
        nor when its own words name what the newsletters never mention."""
        if use_llm:
            from rag import generate

            condensed = generate.condense(question, history, self._generator(), self.settings.max_question_chars)
            if condensed:
                return condensed, None
        from rag.followup import resolve
        from rag.scope import off_topic, unknown_names

        index = self.index()
        query = self._query_text(question, lang.detect(question))
        if unknown_names(query, index.corpus) or _specific(off_topic(query, index.corpus)):
            return question, None  # it names what the archive never mentions: carried words cannot change that
        alone = self._extract(question, None, Filters())
        if alone.verdict == "answer":
            return question, alone  # the caller may use this answer instead of asking again
        return resolve(question, history, index.lexical), None

    def _generator(self) -> Generator:
        if self._llm is None:
            from rag import generate

            self._llm = generate.client(self.settings)
        return self._llm

    def evidence(
        self, question: str, k: int | None = None, filters: Filters = Filters(), language: str = ""
    ) -> Evidence:
        """What the answer stage reads for a checked question: the index version, the text matched, the query
        vectors and the retrieved passages (`language`: the asker's, default detected from `question`)."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        language = language or lang.detect(question)
        index = self.index()
        timings["load"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        qv = self._query_vectors(question, language)
        timings["embed"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        query = self._query_text(question, language)
        hits = search(index, query, qv, self.fusion(), filters, k or self.settings.k, language)
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        return Evidence(index, query, language, qv, tuple(hits), timings)

    def _extract(self, q: str, k: int | None, filters: Filters, resolved: str = "") -> Answer:
        """The answer stage's answer to checked question `q`, retrieved as `resolved` (a follow-up read as a
        standalone question) when given."""
        language = lang.detect(q)
        if not lang.supported(q):
            return Answer(question=q, language=language, abstained=True, answer=UNSUPPORTED)
        ev = self.evidence(resolved or q, k, filters, language)
        timings = dict(ev.timings)
        t = time.perf_counter()
        answer = compose(q, ev.query, language, ev.index, list(ev.hits), ev.vectors, self.answer_settings())
        timings["answer"] = (time.perf_counter() - t) * 1000
        timings["total"] = sum(timings.values())
        if resolved and resolved != q:
            return dataclasses.replace(answer, timings_ms=timings, resolved_question=resolved)
        return dataclasses.replace(answer, timings_ms=timings)

    @staticmethod
    def _query_text(question: str, language: str) -> str:
        """Traditional questions are matched in Simplified, the script the index normalises to."""
        return lang.to_simplified(question) if language == "zh-hant" else question

    def _query_vectors(self, question: str, language: str) -> dict[str, np.ndarray]:
        """The question through every embedder; with several, they run side by side (each on one core)."""
        text = self._query_text(question, language)
        embedders = list(self.embedders.items())
        if len(embedders) == 1:
            return {name: e.encode_queries([text])[0] for name, e in embedders}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(embedders) - 1, thread_name_prefix="embed")
        (first, e0), rest = embedders[0], embedders[1:]
        futures = {name: self._pool.submit(e.encode_queries, [text]) for name, e in rest}
        out = {first: e0.encode_queries([text])[0]}  # numpy (USE) and C (e5) release the GIL
        out.update({name: f.result()[0] for name, f in futures.items()})
        return {name: out[name] for name, _e in embedders}

    def fusion(self) -> FusionSettings:
        s = self.settings
        return FusionSettings(weights=s.weights, candidates=s.candidates, rerank=s.rerank)

    def answer_settings(self) -> AnswerSettings:
        s = self.settings
        return AnswerSettings(
            model=load_answer_model(Path(s.answer_model)) if s.answer_model else load_answer_model(),
            abstain=s.abstain_threshold,
            confident=s.confident_threshold,
            max_sentences=s.max_answer_sentences,
            margin=s.answer_margin,
        )


def _n_live(index: Index | None) -> int:
    if index is None:
        return 0
    return len(index.chunks) if index.live is None else int(index.live.sum())


def _live_rows(index: Index) -> Iterator[int]:
    """Chunk rows of documents the index holds (not those tombstoned in a segment)."""
    live = index.live
    return iter(range(len(index.chunks))) if live is None else (int(i) for i in np.flatnonzero(live))


SPECIFIC_WEIGHT = 4.0  # general_weight ≥ 4 (Zipf ≤ 4): "zebra", "walrus"; not "came", "held"


def _specific(words: Sequence[str]) -> bool:
    """True when one of `words` is a specific word of its language (rare at large), not a generic one: an
    off-topic question about a zebra stays off topic, an elliptical "And how many came?" is a follow-up."""
    from rag.features import general_weight
    from rag.lexical import analyze

    return any(
        general_weight(token, language) >= SPECIFIC_WEIGHT
        for word in words
        for language in ["en" if word.isascii() else "zh"]
        for token in analyze(word, language)
    )


def _rows_by_doc(index: Index) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Document → its live chunk rows and its live sentence rows."""
    if index.parts:  # from each segment's own map (no chunk is made)
        chunks: dict[str, list[int]] = {}
        sentences: dict[str, list[int]] = {}
        for p in index.parts:
            crows, srows = p.segment.doc_rows()
            for d in p.segment.documents:
                if d not in p.deleted:
                    chunks[d] = [p.chunk_offset + r for r in crows.get(d, [])]
                    sentences[d] = [p.sentence_offset + r for r in srows.get(d, [])]
        return chunks, sentences
    chunks = {}
    for i in _live_rows(index):
        chunks.setdefault(index.chunks[i].doc_id, []).append(i)
    sentences = {}
    slive = index.sentence_live
    for i, (d, _a, _b) in enumerate(index.sentences):
        if slive is None or slive[i]:
            sentences.setdefault(d, []).append(i)
    return chunks, sentences


def _rows_of_text(
    old: Index | None, doc_id: str, rows: tuple[dict[str, list[int]], dict[str, list[int]]]
) -> tuple[dict[str, int], dict[str, int]]:
    """The indexed version of `doc_id`: its passages' and sentences' texts → their rows ({} when not indexed)."""
    if old is None or doc_id not in old.documents:
        return {}, {}
    text = old.documents[doc_id].text
    chunk_rows = {old.chunks[r].text: r for r in rows[0].get(doc_id, ())}
    sentence_rows = {text[old.sentences[r][1] : old.sentences[r][2]]: r for r in rows[1].get(doc_id, ())}
    return chunk_rows, sentence_rows


def _reusable(old: Index, chunker: ChunkSettings, sentence_vectors: str) -> bool:
    """True when `old`'s vectors were made as this writer makes them (chunks cut alike, sentence vectors made
    alike), so those of unchanged text can be kept."""
    return old.manifest.chunker == chunker.as_dict() and old.manifest.sentence_vectors == sentence_vectors


def _same(old: Index | None, doc: Document) -> bool:
    """True when `old` holds this document with the same content (its chunks and vectors can be reused)."""
    prev = old.documents.get(doc.doc_id) if old is not None else None
    return prev is not None and prev.content_hash == doc.content_hash


def _moved(prev: Document, doc: Document) -> bool:
    """True when the index holds this doc_id from another file than `doc`'s (`x.docx` then `x.pdf`)."""
    if not prev.path or not doc.path:
        return False
    return os.path.abspath(prev.path) != os.path.abspath(doc.path)


def _collision(doc_id: str, other: str) -> str:
    return (
        f"doc_id {doc_id!r} is already the id of {other} in the index; not overwritten. Rename the file, give it "
        "a doc_id in front matter or a .meta.json sidecar, or remove the other first (`index remove`); "
        "if the files moved, `ingest --prune --yes` makes the index equal the folder"
    )


def _big_doc_progress(progress: Progress, doc: Document) -> Callable[[int, int], None] | None:
    """A progress bar of its own (in characters) for a document the chunker takes a while over."""
    if len(doc.text) <= BLOCK:
        return None
    stage = f"chunk {doc.doc_id[:40]} (characters)"

    def report(done: int, total: int) -> None:
        progress(stage, done, total)

    report(0, len(doc.text))
    return report
