"""The one place the stages are wired: ingest → clean → chunk → embed → index → retrieve → answer."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from rag import lang
from rag.answer import AnswerSettings, compose
from rag.chunk import ChunkSettings, chunk, split_sentences
from rag.clean import clean
from rag.embed import Embedder, load_embedder
from rag.ingest import IngestError, discover, read_many
from rag.retrieve import Filters, FusionSettings, search
from rag.scope import unknown_names
from rag.settings import Settings
from rag.store import (
    FormatOutdated,
    Index,
    IndexNotFound,
    Manifest,
    list_indexes,
    open_index,
    stored_documents,
    write_index,
    write_lock,
)
from rag.types import Answer, Chunk, Document, Hit

Progress = Callable[[str, int, int], None]  # (stage, done, total)

log = logging.getLogger(__name__)


class QuestionError(ValueError):
    """A question that cannot be asked (empty, too long); the message says why."""


class NothingToIngest(ValueError):
    """The paths given hold no newsletter file at all (an empty folder, a folder of other files)."""


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What an ingest or removal changed in the index."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    errors: tuple[IngestError, ...] = ()
    chunks: int = 0
    embedded_chunks: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


class Pipeline:
    """Builds, updates and queries one index with one set of settings; models load on first use."""

    def __init__(self, settings: Settings, embedders: dict[str, Embedder] | None = None) -> None:
        self.settings = settings
        self._embedders = embedders
        self._index: Index | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._index_stamp: float | None = None
        self._reopen = threading.RLock()  # one thread opens a new index version; the others keep the old one

    # -- models ---------------------------------------------------------------------------------
    @property
    def embedders(self) -> dict[str, Embedder]:
        if self._embedders is None:
            self._embedders = {spec: load_embedder(spec) for spec in self.settings.embedders}
        return self._embedders

    def warm_up(self) -> None:
        """Load every model and the index now, so the first question is as fast as the rest."""
        index = self.index()
        self._query_vectors("warm up", "en")  # every model, and the thread that runs them side by side
        if index.lexical is not None:
            index.lexical.search("warm up 预热", k=1)
        unknown_names("Warm up 预热北京", index.corpus)  # jieba's part-of-speech tagger loads in about a second
        lang.to_traditional("预热")  # OpenCC's dictionaries
        from wordfreq import zipf_frequency

        zipf_frequency("warm", "en")  # word frequencies (common-word checks of names and pinyin)

    # -- index ----------------------------------------------------------------------------------
    def index(self) -> Index:
        """The opened index (reopened when another process rewrote it); built from the sample if absent.

        Readers never wait for a writer: while a new version is being swapped in or opened by another
        thread, callers that already hold a version keep answering from it.
        """
        manifest = self.settings.index_dir / "manifest.json"
        current = self._index
        if current is not None:
            stamp = manifest.stat().st_mtime if manifest.exists() else None
            if stamp is None or stamp == self._index_stamp:  # None: a writer is between its two renames
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
        manifest = folder / "manifest.json"
        stamp = manifest.stat().st_mtime if manifest.exists() else None
        if self._index is not None and stamp == self._index_stamp:
            return self._index
        try:
            index = open_index(folder, tuple(self.embedders), self.settings.lexical)
        except FormatOutdated as exc:  # derived data: rebuild it from the cleaned documents it stores
            log.warning("%s; rebuilding it from the documents it stores", exc)
            self.update(stored_documents(folder), rebuild=True)
            index = open_index(folder, tuple(self.embedders), self.settings.lexical)
        except IndexNotFound:
            if self.settings.index_name != "default":
                existing = list_indexes(self.settings.index_root)
                raise IndexNotFound(
                    f"unknown index {self.settings.index_name!r}; existing: {', '.join(existing) or 'none'}"
                ) from None
            self.ingest([self.settings.corpus])
            index = open_index(folder, tuple(self.embedders), self.settings.lexical)
        stamp = (folder / "manifest.json").stat().st_mtime
        self._index, self._index_stamp = index, stamp
        return index

    def ingest(
        self,
        paths: Iterable[Path],
        progress: Progress = _no_progress,
        rebuild: bool = False,
        replace_all: bool = False,
    ) -> IngestReport:
        """Add or update newsletter files; unchanged ones keep their vectors. `replace_all` drops the rest."""
        t0 = time.perf_counter()
        paths = [Path(p) for p in paths]
        files = discover(paths)
        if not files:
            raise NothingToIngest(
                f"no newsletter files (.txt .md .html .pdf .docx) in {', '.join(map(str, paths)) or 'nothing'}; "
                "the index is unchanged"
            )
        raws, errors = read_many(files)
        docs: list[Document] = []
        for i, raw in enumerate(raws):
            progress("clean", i + 1, len(raws))
            try:
                docs.append(clean(raw))
            except Exception as exc:  # a document the cleaner cannot handle must not stop the batch
                errors.append(IngestError(Path(raw.path), f"cannot clean: {exc}"))
        report = self.update(docs, progress, rebuild=rebuild, replace_all=replace_all)
        return dataclasses.replace(report, errors=tuple(errors), seconds=time.perf_counter() - t0)

    def update(
        self,
        docs: Sequence[Document],
        progress: Progress = _no_progress,
        rebuild: bool = False,
        replace_all: bool = False,
    ) -> IngestReport:
        """Put cleaned documents into the index, embedding only new or changed ones."""
        t0 = time.perf_counter()
        with write_lock(self.settings.index_dir):
            old = None if rebuild else self._open_existing()
            merged = {} if old is None or replace_all else dict(old.documents)
            added, updated, unchanged = [], [], []
            for doc in docs:
                prev = old.documents.get(doc.doc_id) if old else None
                if prev is None:
                    added.append(doc.doc_id)
                elif prev.content_hash == doc.content_hash:
                    unchanged.append(doc.doc_id)
                else:
                    updated.append(doc.doc_id)
                merged[doc.doc_id] = doc
            removed = sorted(set(old.documents) - set(merged)) if old else []
            n_chunks, embedded = self._write(merged, old, progress)
        self._index_stamp = None  # reopen on next use; until then readers keep the old version
        return IngestReport(
            added=tuple(added),
            updated=tuple(updated),
            unchanged=tuple(unchanged),
            removed=tuple(removed),
            chunks=n_chunks,
            embedded_chunks=embedded,
            seconds=time.perf_counter() - t0,
        )

    def remove(self, doc_ids: Sequence[str]) -> IngestReport:
        """Remove newsletters by id; the others keep their vectors."""
        t0 = time.perf_counter()
        with write_lock(self.settings.index_dir):
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
            docs = {k: v for k, v in old.documents.items() if k not in doc_ids}
            n, _ = self._write(docs, old, _no_progress)
        self._index_stamp = None  # reopen on next use; until then readers keep the old version
        return IngestReport(removed=tuple(doc_ids), chunks=n, seconds=time.perf_counter() - t0)

    def _open_existing(self) -> Index | None:
        try:
            return open_index(self.settings.index_dir, tuple(self.embedders), self.settings.lexical)
        except IndexNotFound:
            return None

    def _write(self, docs: dict[str, Document], old: Index | None, progress: Progress) -> tuple[int, int]:
        s = self.settings
        chunker = ChunkSettings(size=s.chunk_size, overlap=s.chunk_overlap)
        if old is not None and old.manifest.chunker != chunker.as_dict():
            old = None  # chunks cut differently: nothing can be reused
        chunks: list[Chunk] = []
        sentences: list[tuple[str, int, int]] = []
        reuse_chunk_rows: list[int | None] = []
        reuse_sentence_rows: list[int | None] = []
        old_rows = _rows_by_doc(old) if old else ({}, {})
        for doc_id in sorted(docs):
            doc = docs[doc_id]
            same = (
                old is not None and doc_id in old.documents and old.documents[doc_id].content_hash == doc.content_hash
            )
            if same:
                crow, srow = old_rows[0][doc_id], old_rows[1][doc_id]
                chunks.extend(old.chunks[r] for r in crow)  # type: ignore[union-attr]
                reuse_chunk_rows.extend(crow)
                sentences.extend(old.sentences[r] for r in srow)  # type: ignore[union-attr]
                reuse_sentence_rows.extend(srow)
            else:
                new_chunks = chunk(doc, chunker)
                chunks.extend(new_chunks)
                reuse_chunk_rows.extend([None] * len(new_chunks))
                spans = split_sentences(doc.text)
                sentences.extend((doc_id, a, b) for a, b in spans)
                reuse_sentence_rows.extend([None] * len(spans))
        # Re-number ordinals/ids stay as produced per document; rows are positions in this list.
        vectors, sentence_vectors = {}, {}
        embedded = sum(r is None for r in reuse_chunk_rows)
        for name, emb in self.embedders.items():
            vectors[name] = self._embed(
                emb,
                [c.text for c in chunks],
                reuse_chunk_rows,
                old.vectors[name] if old else None,
                progress,
                f"embed passages ({name})",
            )
            sentence_vectors[name] = self._embed(
                emb,
                [docs[d].text[a:b] for d, a, b in sentences],
                reuse_sentence_rows,
                old.sentence_vectors[name] if old else None,
                progress,
                f"embed sentences ({name})",
            )
        lexical = sentence_lexical = None
        if s.lexical:
            from rag.lexical import LexicalIndex

            progress("lexical index", 0, 2)
            lexical = LexicalIndex.build([c.text for c in chunks], [lang.base(c.language) for c in chunks])
            progress("lexical index", 1, 2)
            sentence_lexical = LexicalIndex.build(
                [docs[d].text[a:b] for d, a, b in sentences], [docs[d].language for d, _, _ in sentences]
            )
            progress("lexical index", 2, 2)
        manifest = Manifest(
            embedders=tuple(self.embedders),
            dims={name: int(v.shape[1]) for name, v in vectors.items()},
            lexical=s.lexical,
            chunker=chunker.as_dict(),
            documents={d: docs[d].content_hash for d in sorted(docs)},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            counts={"documents": len(docs), "chunks": len(chunks), "sentences": len(sentences)},
        )
        write_index(
            Index(
                s.index_dir,
                manifest,
                docs,
                chunks,
                vectors,
                sentences,
                sentence_vectors,
                lexical,
                sentence_lexical,
            )
        )
        return len(chunks), embedded

    @staticmethod
    def _embed(
        emb: Embedder,
        texts: list[str],
        reuse: list[int | None],
        old_vectors: np.ndarray | None,
        progress: Progress,
        stage: str,
        batch: int = 32,
    ) -> np.ndarray:
        """Vectors for `texts`, copying rows of unchanged documents instead of re-embedding them."""
        dim = old_vectors.shape[1] if old_vectors is not None else None
        todo = [i for i, r in enumerate(reuse) if r is None]
        fresh: dict[int, np.ndarray] = {}
        for b in range(0, len(todo), batch):
            ids = todo[b : b + batch]
            out = emb.encode_documents([texts[i] for i in ids])
            fresh.update(zip(ids, out, strict=True))
            progress(stage, min(b + batch, len(todo)), len(todo))
        if dim is None:
            dim = next(iter(fresh.values())).shape[0] if fresh else emb.dim
        out_arr = np.zeros((len(texts), dim), np.float32)
        for i, r in enumerate(reuse):
            out_arr[i] = fresh[i] if r is None else old_vectors[r]  # type: ignore[index]
        return out_arr

    # -- questions ------------------------------------------------------------------------------
    def check_question(self, question: str) -> str:
        """The question, stripped; raises QuestionError with a clear message when it can't be asked."""
        q = (question or "").strip()
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

    def ask(self, question: str, k: int | None = None, filters: Filters = Filters()) -> Answer:
        """Answer one question from the index, with citations, or abstain."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        q = self.check_question(question)
        language = lang.detect(q)
        index = self.index()
        timings["load"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        qv = self._query_vectors(q, language)
        timings["embed"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        hits = search(index, self._query_text(q, language), qv, self.fusion(), filters, k or self.settings.k, language)
        timings["retrieve"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        answer = compose(q, self._query_text(q, language), language, index, hits, qv, self.answer_settings())
        timings["answer"] = (time.perf_counter() - t) * 1000
        timings["total"] = sum(timings.values())
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
        return AnswerSettings(
            threshold=self.settings.abstain_threshold, max_sentences=self.settings.max_answer_sentences
        )


def _rows_by_doc(index: Index) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    chunks: dict[str, list[int]] = {}
    for i, c in enumerate(index.chunks):
        chunks.setdefault(c.doc_id, []).append(i)
    sentences: dict[str, list[int]] = {}
    for i, (d, _a, _b) in enumerate(index.sentences):
        sentences.setdefault(d, []).append(i)
    return chunks, sentences
