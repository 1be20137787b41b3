"""The Milvus backend: vectors and lexical postings in Milvus collections, searched by the engine.

What lives where (docs/scale.md, "Milvus"):

- **Milvus**, two collections per index (`nqa_<index>_chunks`, `nqa_<index>_sentences`): one dense vector
  field per encoder (`dense_use`, `dense_e5`, …, inner product on L2-normalised vectors), and for chunks a
  sparse vector `sparse` of BM25 document weights computed by our own analyzer (`rag.lexical`: jieba, stems,
  CC-CEDICT translations of each passage), plus the scalar fields filters need (language, issue, dates, section,
  doc_id). Searches are one `hybrid_search` (dense routes + the sparse route, fused by the engine's RRF or
  weighted ranker) with filters as Milvus expressions.
- **The index folder** (`rag.store`, unchanged format, no vector files): manifest, documents, chunks,
  sentences and the BM25 statistics. The answer stage reads documents, sentence rows, editions and document
  frequencies from there; sentence and chunk vectors are fetched from Milvus by primary key, only for the rows
  a question touches (`RemoteRows`), and cached.

Entities are keyed by content: a document's key hashes its doc_id, content hash and chunker, so a writer
upserts only new or changed documents, swaps the folder's pointer (readers of the old version keep working:
entities they don't know are skipped), then deletes the entities no document of the new version owns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rag.backend import check_backend
from rag.lang import base, detect
from rag.retrieve import Filters, FusionSettings
from rag.settings import Settings
from rag.sparse import document_sparse, query_sparse
from rag.store import Index, StoreError, _read_pointer, open_index, write_index
from rag.types import Hit

log = logging.getLogger(__name__)

NAME = "milvus"
RANKERS = ("rrf", "weighted")
RRF_K = 60  # the RRF constant Milvus documents (and the literature's default)
BATCH = 256  # entities per upsert / keys per fetch
CACHE_ROWS = 50_000  # fetched vectors kept per opened index (chunks + sentences)
TEXT_MAX = 4096  # VARCHAR length of doc ids and section names
SCALARS = ("doc_key", "doc_id", "language", "doc_language", "issue", "date_start", "date_end", "section")


class MilvusError(StoreError):
    """The Milvus server or file could not be reached, or does not hold what the index folder says."""


# ---------------------------------------------------------------- names


def _identifier(text: str, prefix: str) -> str:
    """A Milvus name (letters, digits, underscores) for `text`; a hash keeps names that clean alike apart."""
    clean = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if clean != text or not clean:
        clean = f"{clean[:40]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}".strip("_")
    return f"{prefix}{clean}"


def dense_field(channel: str) -> str:
    """The vector field of a dense channel: `use` → `dense_use`, `st:/models/x` → `dense_st_models_x_<hash>`."""
    return _identifier(channel, "dense_")


def made_with(chunker: Mapping[str, Any], sentence_vectors: str) -> dict[str, Any]:
    """What a document's entities depend on besides its text: the chunker, and how sentence vectors are made
    (left out when "encoded", so the keys of indexes written before the setting existed stay the same)."""
    return dict(chunker) if sentence_vectors == "encoded" else {**chunker, "sentence_vectors": sentence_vectors}


def doc_key(doc_id: str, content_hash: str, chunker: Mapping[str, Any]) -> str:
    """The key of one document's entities: changes when its text or the chunker changes."""
    raw = json.dumps([doc_id, content_hash, dict(chunker)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def resolve_uri(settings: Settings) -> str:
    """`milvus_uri`, or Milvus Lite's file inside the index folder when it is empty."""
    return settings.milvus_uri.strip() or str(settings.index_dir / "milvus.db")


# ---------------------------------------------------------------- clients

_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def client(uri: str, token: str = "") -> Any:
    """One MilvusClient per (uri, token) and process; a `.db` uri starts Milvus Lite in this process."""
    key = (uri, token)
    with _CLIENTS_LOCK:
        c = _CLIENTS.get(key)
        if c is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise MilvusError(
                    "index_backend = 'milvus' needs pymilvus and milvus-lite: pip install '.[milvus]'"
                ) from exc
            if uri.endswith(".db"):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                c = _CLIENTS[key] = MilvusClient(uri=uri, token=token)
            except Exception as exc:  # connection refused, bad uri, a .db another process holds
                raise MilvusError(f"cannot connect to Milvus at {uri}: {type(exc).__name__}: {exc}") from exc
        return c


def close(uri: str) -> None:
    """Close this process's clients of `uri`; for a Milvus Lite file, stop its server (the file stays)."""
    with _CLIENTS_LOCK:
        for key in [k for k in _CLIENTS if k[0] == uri]:
            with contextlib.suppress(Exception):  # already closed
                _CLIENTS.pop(key).close()
    if uri.endswith(".db"):
        try:
            from milvus_lite.server_manager import server_manager_instance
        except ImportError:
            return
        server_manager_instance.release_server(uri)


# ---------------------------------------------------------------- filters


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _like(text: str) -> str:
    return re.sub(r"([\\%_])", r"\\\1", text)


def filter_expr(f: Filters) -> str:
    """The filters as a Milvus boolean expression ("" = none), meaning what `rag.retrieve.allowed_rows` means."""
    parts = []
    others = f.issue or f.date_from or f.date_to or f.doc_ids or f.exclude
    if f.language:  # alone, by the passage's language; with other filters, by its document's (as retrieve)
        parts.append(f"{'doc_language' if others else 'language'} == {_quote(base(f.language))}")
    if f.issue:
        parts.append(f"issue == {_quote(str(f.issue).strip())}")
    if f.date_from:
        parts.append(f'(date_end == "" or date_end >= {_quote(f.date_from)})')
    if f.date_to:
        parts.append(f'(date_start == "" or date_start <= {_quote(f.date_to)})')
    if f.section:
        parts.append(f"section like {_quote('%' + _like(f.section.lower()) + '%')}")
    if f.doc_ids:
        parts.append(f"doc_id in {_quote_list(f.doc_ids)}")
    if f.exclude:
        parts.append(f"doc_id not in {_quote_list(f.exclude)}")
    return " and ".join(parts)


def _quote_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_quote(v) for v in values) + "]"


# ---------------------------------------------------------------- vectors fetched on demand


class RemoteVectors:
    """The vectors of one collection, fetched by primary key for the rows asked and cached."""

    def __init__(self, store: MilvusStore, collection: str, keys: Sequence[str], dims: Mapping[str, int]) -> None:
        self.store, self.collection, self.keys, self.dims = store, collection, list(keys), dict(dims)
        self._cache: dict[int, dict[str, np.ndarray]] = {}
        self._lock = threading.Lock()

    def remember(self, row: int, vectors: Mapping[str, np.ndarray]) -> None:
        with self._lock:
            if len(self._cache) >= CACHE_ROWS:
                self._cache.clear()
            self._cache.setdefault(row, {}).update(vectors)

    def take(self, rows: Sequence[int], channel: str) -> np.ndarray:
        """One channel's vectors of `rows`, in order: from the cache, the rest fetched (all channels at once)."""
        rows = [int(r) for r in rows]
        out: dict[int, np.ndarray] = {}
        with self._lock:
            for r in rows:
                v = self._cache.get(r, {}).get(channel)
                if v is not None:
                    out[r] = v
        missing = sorted(set(rows) - out.keys())
        fields = [dense_field(ch) for ch in self.dims]
        by_key = {self.keys[r]: r for r in missing}
        for i in range(0, len(missing), BATCH):
            part = [self.keys[r] for r in missing[i : i + BATCH]]
            for e in self.store.query(self.collection, f"pk in {_quote_list(part)}", ["pk", *fields]):
                r = by_key[e["pk"]]
                vectors = {ch: np.asarray(e[dense_field(ch)], np.float32) for ch in self.dims}
                out[r] = vectors[channel]
                if len(missing) <= CACHE_ROWS:  # a bulk read (an ingest's unchanged rows) leaves the cache be
                    self.remember(r, vectors)
        if absent := [r for r in rows if r not in out]:
            raise MilvusError(
                f"Milvus collection {self.collection} lacks {len(absent)} vector(s) the index folder lists "
                f"(key {self.keys[absent[0]]}); re-index with `newsletter-qa ingest --rebuild`"
            )
        return np.stack([out[r] for r in rows]) if rows else np.zeros((0, self.dims[channel]), np.float32)


class RemoteRows:
    """One channel's vectors of a collection, indexable like the (rows, dim) array the folder backend holds."""

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, source: RemoteVectors, channel: str) -> None:
        self.source, self.channel = source, channel

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.source.keys), self.source.dims[self.channel])

    def __len__(self) -> int:
        return len(self.source.keys)

    def __getitem__(self, rows: Any) -> np.ndarray:
        if isinstance(rows, (int, np.integer)):
            cached = self.source._cache.get(int(rows), {}).get(self.channel)  # folding asks row by row
            return cached if cached is not None else self.source.take([int(rows)], self.channel)[0]
        if isinstance(rows, slice):
            rows = range(*rows.indices(len(self)))
        return self.source.take(np.asarray(rows, np.int64).ravel().tolist(), self.channel)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self[slice(None)]
        return out.astype(dtype) if dtype is not None else out


@dataclass
class MilvusIndex(Index):
    """An Index whose vectors are in Milvus: `vectors` and `sentence_vectors` hold `RemoteRows` (indexable like
    the arrays the folder backend holds, fetching on demand)."""

    engine: Any = None  # the MilvusStore: `rag.retrieve.search` hands it the question
    row_of_key: dict[str, int] = field(default_factory=dict)  # chunk entity key → chunk row
    chunk_rows: Any = None  # the RemoteVectors behind `vectors` (search caches the candidates' vectors there)

    def __post_init__(self) -> None:  # no FAISS over remote vectors
        if not self.chunk_sentences:
            from rag.segments import map_chunk_sentences

            self.chunk_sentences = map_chunk_sentences(self.chunks, self.sentences)


# ---------------------------------------------------------------- the store


@dataclass
class MilvusStore:
    """Opens and writes indexes whose vectors live in Milvus (`index_backend = "milvus"`)."""

    uri: str
    token: str = ""
    ranker: str = "rrf"
    index_type: str = "AUTOINDEX"
    index_name: str = "default"
    name: str = NAME
    _loaded: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, settings: Settings) -> MilvusStore:
        ranker = settings.milvus_ranker.strip().lower()
        if ranker not in RANKERS:
            raise ValueError(f"unknown milvus_ranker {settings.milvus_ranker!r}; use one of {', '.join(RANKERS)}")
        return cls(resolve_uri(settings), settings.milvus_token, ranker, settings.milvus_index, settings.index_name)

    # -- names and plumbing --------------------------------------------------------------------------
    @property
    def chunks_collection(self) -> str:
        return _identifier(self.index_name, "nqa_") + "_chunks"

    @property
    def sentences_collection(self) -> str:
        return _identifier(self.index_name, "nqa_") + "_sentences"

    @property
    def client(self) -> Any:
        return client(self.uri, self.token)

    def record(self) -> dict[str, Any]:
        """What the manifest says about where the vectors are (never the token)."""
        return {
            "name": NAME,
            "uri": self.uri,
            "collections": [self.chunks_collection, self.sentences_collection],
            "index_type": self.index_type,
            "ranker": self.ranker,
        }

    def query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        try:
            return list(self.client.query(collection, filter=expr, output_fields=fields))
        except MilvusError:
            raise
        except Exception as exc:
            raise MilvusError(f"Milvus query on {collection} failed: {type(exc).__name__}: {exc}") from exc

    def _load(self, collection: str) -> None:
        if collection not in self._loaded:
            self.client.load_collection(collection)
            self._loaded.add(collection)

    # -- writing -------------------------------------------------------------------------------------
    def _schema(self, dims: Mapping[str, int], sparse: bool, scalars: bool) -> Any:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("doc_key", DataType.VARCHAR, max_length=32)
        if scalars:
            schema.add_field("doc_id", DataType.VARCHAR, max_length=TEXT_MAX)
            for name in ("language", "doc_language"):
                schema.add_field(name, DataType.VARCHAR, max_length=8)
            schema.add_field("issue", DataType.VARCHAR, max_length=256)
            for name in ("date_start", "date_end"):
                schema.add_field(name, DataType.VARCHAR, max_length=32)
            schema.add_field("section", DataType.VARCHAR, max_length=TEXT_MAX)
        for ch, dim in dims.items():
            schema.add_field(dense_field(ch), DataType.FLOAT_VECTOR, dim=int(dim))
        if sparse:
            schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        return schema

    def _ensure(self, collection: str, dims: Mapping[str, int], sparse: bool, scalars: bool) -> bool:
        """Create `collection` with these fields (dropping one with other fields); True when (re)created."""
        c = self.client
        wanted = {"pk", "doc_key", *(SCALARS if scalars else ()), *(dense_field(ch) for ch in dims)}
        wanted |= {"sparse"} if sparse else set()
        if c.has_collection(collection):
            fields = c.describe_collection(collection)["fields"]
            have = {f["name"] for f in fields}
            have_dims = {
                f["name"]: int(f.get("params", {}).get("dim", 0)) for f in fields if "dim" in f.get("params", {})
            }
            if have == wanted and all(have_dims.get(dense_field(ch)) == int(d) for ch, d in dims.items()):
                self._load(collection)
                return False
            log.warning("Milvus collection %s has other fields than this index needs: recreating it", collection)
            c.drop_collection(collection)
            self._loaded.discard(collection)
        params = c.prepare_index_params()
        for ch in dims:
            params.add_index(field_name=dense_field(ch), index_type=self.index_type, metric_type="IP")
        if sparse:
            params.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
        c.create_collection(
            collection,
            schema=self._schema(dims, sparse, scalars),
            consistency_level="Strong",  # a question right after an ingest sees it
        )
        c.create_index(collection, params, sync=False)  # of an empty collection: no need to poll (0.5 s each)
        self._load(collection)
        return True

    def write(self, index: Index) -> None:
        """Upsert the entities of new or changed documents, write the folder version (its pointer swap makes
        them current), then delete the entities of documents the new version no longer holds. Hold the
        folder's write lock."""
        folder = index.folder
        previous = _read_pointer(folder)
        dims = {ch: int(v.shape[1]) for ch, v in index.vectors.items()}
        sparse = index.lexical is not None
        try:
            fresh = self._ensure(self.chunks_collection, dims, sparse, True)
            fresh |= self._ensure(self.sentences_collection, dims, False, False)
            chunker = made_with(index.manifest.chunker, index.manifest.sentence_vectors)
            # Every document of the new version (the manifest lists them all, written now or kept).
            keys = {d: doc_key(d, h, chunker) for d, h in index.manifest.documents.items()}
            held = set() if fresh else self._held(previous)
            self._upsert_chunks(index, keys, held)
            self._upsert_sentences(index, keys, held)
            for collection in (self.chunks_collection, self.sentences_collection):
                self.client.flush(collection)  # sealed and indexed: Milvus Lite scans unflushed rows in Python
        except MilvusError:
            raise
        except Exception as exc:
            raise MilvusError(f"writing to Milvus at {self.uri} failed: {type(exc).__name__}: {exc}") from exc
        manifest = replace(index.manifest, backend=self.record())
        write_index(
            Index(folder, manifest, index.documents, index.chunks, {}, index.sentences, {}, index.lexical, None)
        )
        live = sorted(set(keys.values()))
        expr = f"doc_key not in {_quote_list(live)}" if live else 'doc_key != ""'
        for collection in (self.chunks_collection, self.sentences_collection):
            try:
                self.client.delete(collection, filter=expr)
                self.client.flush(collection)
            except Exception as exc:  # the next write deletes them: they are never read (unknown keys)
                log.warning("could not delete stale entities from %s: %s", collection, exc)

    def _held(self, previous: Mapping[str, Any]) -> set[str]:
        """Keys of the documents the previous version wrote to these collections (their entities are there)."""
        record = previous.get("backend") or {}
        if record.get("name") != NAME or record.get("uri") != self.uri:
            return set()
        if record.get("collections") != [self.chunks_collection, self.sentences_collection]:
            return set()
        stats = self.client.get_collection_stats(self.chunks_collection)
        if int(stats.get("row_count", 0)) < int((previous.get("counts") or {}).get("chunks", 0)):
            return set()  # entities went missing (dropped by hand?): write them all again
        chunker = made_with(previous.get("chunker") or {}, str(previous.get("sentence_vectors", "encoded")))
        return {doc_key(d, h, chunker) for d, h in (previous.get("documents") or {}).items()}

    def _upsert(self, collection: str, rows: Iterable[dict[str, Any]]) -> None:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                self.client.upsert(collection, batch)
                batch = []
        if batch:
            self.client.upsert(collection, batch)

    def _upsert_chunks(self, index: Index, keys: Mapping[str, str], held: set[str]) -> None:
        todo = [r for r, c in enumerate(index.chunks) if keys[c.doc_id] not in held]
        if not todo:
            return
        weights = document_sparse(index.lexical) if index.lexical is not None else None

        def rows() -> Iterable[dict[str, Any]]:
            for r in todo:
                c = index.chunks[r]
                doc = index.documents[c.doc_id]
                if len(c.doc_id) > TEXT_MAX:
                    raise MilvusError(f"doc_id longer than {TEXT_MAX} characters: {c.doc_id[:80]}…")
                row: dict[str, Any] = {
                    "pk": chunk_key(keys, c.doc_id, c.ordinal),
                    "doc_key": keys[c.doc_id],
                    "doc_id": c.doc_id,
                    "language": base(c.language or doc.language),
                    "doc_language": base(doc.language),
                    "issue": str(doc.meta.issue).strip()[:256],
                    "date_start": doc.meta.date_start[:32],
                    "date_end": doc.meta.date_end[:32],
                    "section": c.section.lower()[:TEXT_MAX],
                }
                for ch, v in index.vectors.items():
                    row[dense_field(ch)] = np.asarray(v[r], np.float32).tolist()
                if weights is not None:
                    row["sparse"] = weights[r] or {0: 1e-9}  # Milvus stores no empty vector: a vanishing dimension
                yield row

        self._upsert(self.chunks_collection, rows())

    def _upsert_sentences(self, index: Index, keys: Mapping[str, str], held: set[str]) -> None:
        sentence_keys = sentence_keys_of(index.sentences, keys)
        todo = [r for r, (d, _a, _b) in enumerate(index.sentences) if keys[d] not in held]
        if not todo:
            return

        def rows() -> Iterable[dict[str, Any]]:
            for r in todo:
                row: dict[str, Any] = {"pk": sentence_keys[r], "doc_key": keys[index.sentences[r][0]]}
                for ch, v in index.sentence_vectors.items():
                    row[dense_field(ch)] = np.asarray(v[r], np.float32).tolist()
                yield row

        self._upsert(self.sentences_collection, rows())

    # -- reading -------------------------------------------------------------------------------------
    def open(self, folder: Path, embedders: tuple[str, ...] | None, lexical: bool | None) -> MilvusIndex:
        check_backend(folder, NAME)
        local = open_index(folder, embedders, lexical, vectors=False)
        record = local.manifest.backend
        if record.get("uri") != self.uri:
            raise MilvusError(
                f"index {folder.name!r} keeps its vectors at {record.get('uri')}, not {self.uri} (milvus_uri); "
                "point milvus_uri there or re-index with `newsletter-qa ingest --rebuild`"
            )
        try:
            for collection in (self.chunks_collection, self.sentences_collection):
                if not self.client.has_collection(collection):
                    raise MilvusError(
                        f"index {folder.name!r}: Milvus at {self.uri} has no collection {collection}; "
                        "re-index with `newsletter-qa ingest --rebuild`"
                    )
                self._load(collection)
        except MilvusError:
            raise
        except Exception as exc:
            raise MilvusError(f"cannot open Milvus at {self.uri}: {type(exc).__name__}: {exc}") from exc
        made = made_with(local.manifest.chunker, local.manifest.sentence_vectors)
        keys = {d: doc_key(d, doc.content_hash, made) for d, doc in local.documents.items()}
        dims = dict(local.manifest.dims)
        chunk_rows = RemoteVectors(
            self, self.chunks_collection, [chunk_key(keys, c.doc_id, c.ordinal) for c in local.chunks], dims
        )
        sentence_rows = RemoteVectors(self, self.sentences_collection, sentence_keys_of(local.sentences, keys), dims)
        index = MilvusIndex(
            folder,
            local.manifest,
            local.documents,
            local.chunks,
            {ch: RemoteRows(chunk_rows, ch) for ch in local.manifest.embedders},  # type: ignore[misc]
            local.sentences,
            {ch: RemoteRows(sentence_rows, ch) for ch in local.manifest.embedders},  # type: ignore[misc]
            local.lexical,
            local.sentence_lexical,
            {},
            local.chunk_sentences,
            local.version,
            engine=self,
            chunk_rows=chunk_rows,
            row_of_key={k: r for r, k in enumerate(chunk_rows.keys)},
        )
        return index

    def _sparse_scores(self, sparse_q: Mapping[int, float], expr: str, limit: int) -> dict[str, float]:
        """The sparse route's top `limit` scores by entity key (its score is the dot product, `sparse_dot`)."""
        found = self.client.search(
            self.chunks_collection,
            [dict(sparse_q)],
            anns_field="sparse",
            limit=limit,
            filter=expr,
            output_fields=["pk"],
            search_params={"metric_type": "IP"},
        )[0]
        return {h["entity"]["pk"] if h.get("entity") else h["id"]: float(h["distance"]) for h in found}

    def search(
        self,
        index: MilvusIndex,
        query: str,
        query_vectors: Mapping[str, np.ndarray],
        fusion: FusionSettings,
        filters: Filters = Filters(),
        k: int = 5,
        prefer_language: str = "",
    ) -> list[Hit]:
        """`rag.retrieve.search` through the engine: one hybrid search (dense routes + our BM25 as a sparse
        route, each `fusion.candidates` deep, fused by the engine's ranker) finds the candidates under the
        filters; with `fusion.rerank` they are then re-scored as the folder backend scores its candidates
        (z-scored channels, best-sentence cosines, cross-language offsets), else the engine's order stands.
        """
        from pymilvus import AnnSearchRequest, RRFRanker, WeightedRanker

        from rag.retrieve import ranked_hits, rescore

        if not index.chunks:
            return []
        language = base(prefer_language or detect(query))
        expr = filter_expr(filters)
        active = [ch for ch in query_vectors if ch in index.vectors and (fusion.weight(ch) or fusion.weight(ch, True))]
        requests, weights = [], []
        for ch in active:
            vector = np.asarray(query_vectors[ch], np.float32).tolist()
            requests.append(
                AnnSearchRequest([vector], dense_field(ch), {"metric_type": "IP"}, fusion.candidates, expr or None)
            )
            weights.append(max(fusion.weight(ch), fusion.weight(ch, True)))
        sparse_q: dict[int, float] = {}
        if index.lexical is not None and (fusion.weight("bm25") or fusion.weight("bm25", True)):
            sparse_q = query_sparse(index.lexical, query, language)
            if sparse_q:
                requests.append(
                    AnnSearchRequest([sparse_q], "sparse", {"metric_type": "IP"}, fusion.candidates, expr or None)
                )
                weights.append(max(fusion.weight("bm25"), fusion.weight("bm25", True)))
        if not requests:
            return []
        first = next(iter(index.vectors))  # folding editions compares passages on the first channel
        fields = sorted({"pk", *(dense_field(ch) for ch in {*active, first})})
        ranker = RRFRanker(RRF_K) if self.ranker == "rrf" else WeightedRanker(*weights)
        try:
            found = self.client.hybrid_search(
                self.chunks_collection, requests, ranker, limit=fusion.candidates * len(requests), output_fields=fields
            )[0]
        except Exception as exc:
            raise MilvusError(f"Milvus search failed: {type(exc).__name__}: {exc}") from exc
        source = index.chunk_rows
        rows, engine, entities = [], [], []
        for hit in found:
            entity = hit.get("entity") or {}
            r = index.row_of_key.get(entity.get("pk", hit.get("id")))
            if r is None:  # written by a newer version than the one this reader holds
                continue
            rows.append(r)
            engine.append(float(hit["distance"]))
            entities.append(entity)
            source.remember(r, {ch: np.asarray(entity[dense_field(ch)], np.float32) for ch in {*active, first}})
        if not rows:
            return []
        row_arr = np.array(rows, np.int64)
        per_channel = {
            ch: np.array([np.asarray(e[dense_field(ch)], np.float32) @ query_vectors[ch] for e in entities])
            for ch in active
        }
        if sparse_q:  # BM25 of the candidates: the sparse route's own scores, its top matches as the folder's
            lexical = self._sparse_scores(sparse_q, expr, max(fusion.candidates * 5, 200))
            per_channel["bm25"] = np.array([lexical.get(e["pk"], 0.0) for e in entities])
        if fusion.rerank:  # the folder backend's second stage (rag.retrieve.search), on the engine's candidates
            fused = rescore(index, row_arr, per_channel, query_vectors, active, fusion, language)
        else:
            fused = np.array(engine)
        return ranked_hits(index, row_arr, fused, per_channel, fusion, prefer_language, k)


def chunk_key(keys: Mapping[str, str], doc_id: str, ordinal: int) -> str:
    return f"{keys[doc_id]}#{ordinal}"


def sentence_keys_of(sentences: Sequence[tuple[str, int, int]], keys: Mapping[str, str]) -> list[str]:
    """Primary keys of sentence rows: the document's key and the sentence's place in it."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for d, _a, _b in sentences:
        out.append(f"{keys[d]}:{seen[d]}")
        seen[d] += 1
    return out
