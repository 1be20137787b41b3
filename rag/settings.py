"""One frozen `Settings`: defaults, then a TOML file, then `RAG_*` environment variables."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _default_weights() -> dict[str, float]:
    return {"use": 1.0, "e5": 1.0, "bm25": 1.0}


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, passed explicitly from the entry point down."""

    corpus: Path = PROJECT_ROOT / "data" / "newsletters"  # built-in sample corpus
    index_root: Path = PROJECT_ROOT / "index"
    index_name: str = "default"
    data_dir: Path = PROJECT_ROOT / "var"  # feedback, uploads
    embedders: tuple[str, ...] = ("use", "e5")  # dense channels; `st:<model>` for sentence-transformers
    lexical: bool = True  # BM25 channel with dictionary expansion
    # Where vectors live (rag/backend.py): "faiss" = files in the index folder; "milvus" = Milvus collections
    # (rag/milvus_store.py, docs/scale.md), the documents and chunks staying in the index folder.
    index_backend: str = "faiss"
    milvus_uri: str = ""  # "" = Milvus Lite in <index folder>/milvus.db; or http://host:19530 for a server
    milvus_token: str = ""  # "user:password" or an API key, for a server with authentication
    milvus_ranker: str = "rrf"  # the engine's fusion of its channels: "rrf" or "weighted"
    milvus_index: str = "AUTOINDEX"  # dense index type the collections are built with (FLAT, HNSW, AUTOINDEX, …)
    weights: dict[str, float] = field(default_factory=_default_weights)
    # Sentence vectors (rag/pooling.py): "encoded" = each sentence through every encoder on its own; "pooled" =
    # e5's from its passage's token states (no e5 work of its own), other encoders' encoded. Recorded in the
    # index: an index built with the other value is re-embedded at its next ingest.
    sentence_vectors: str = "encoded"
    chunk_size: int = 110
    chunk_overlap: int = 25
    k: int = 5
    candidates: int = 40  # per channel, before fusion
    rerank: bool = True
    # Segments (rag/segments.py): after a write leaves more than `max_segments`, the smallest are merged into one
    # of at most `merge_max_chunks` chunks (segments above that size are kept as they are).
    max_segments: int = 8
    merge_max_chunks: int = 50_000
    # A writer (ingest, update, remove) works `writer_nice` nice levels below its caller (rag/priority.py), so
    # questions answered meanwhile keep the cores; 0 = the caller's priority.
    writer_nice: int = 10
    answer_model: str = ""  # the answer model's JSON file; "" = the one shipped in the package
    abstain_threshold: float = -1.0  # abstain below this confidence; < 0 = the model's own, chosen on dev
    confident_threshold: float = -1.0  # below this, answers are "closest passages"; < 0 = the model's own
    answer_margin: float = 1.0  # quote further sentences whose logit is within this of the best one
    max_answer_sentences: int = 3
    max_question_chars: int = 2000
    admin_password: str = ""
    max_upload_mb: int = 20
    max_document_mb: int = 32  # per newsletter (file, or text of a PDF/DOCX); larger ones are skipped
    max_upload_files: int = 10  # per upload
    max_comment_chars: int = 2000  # feedback comments
    # Serving (rag.auth, rag.websecurity): who may embed, who vouches for users, how often one may ask.
    allowed_origins: tuple[str, ...] = ()  # pages that may embed the widget, e.g. https://intranet.example
    trusted_proxy_header: str = ""  # e.g. X-Forwarded-User from an SSO reverse proxy on this host
    admin_users: tuple[str, ...] = ()  # users (from the proxy header) with the admin scope
    max_pending: int = 64  # questions answered at once; more get HTTP 503 with Retry-After (a bounded queue)
    asks_per_minute: int = 600  # per API key, user or client address
    logins_per_minute: int = 5  # failed admin passwords / keys per client address
    widget_token_seconds: int = 600
    # Generated answers (rag.generate): any OpenAI-compatible chat server; off while llm_base_url is "".
    llm_base_url: str = ""  # e.g. http://127.0.0.1:8080/v1 (Ollama, vLLM, llama.cpp server, LM Studio)
    llm_model: str = ""
    llm_api_key: str = ""  # sent as a bearer token; masked in reports
    llm_connect_timeout: float = 3.0  # seconds to connect
    llm_timeout: float = 60.0  # seconds for a whole answer, first byte to last
    llm_retries: int = 1  # further attempts after a refused connection or a 5xx/429, never after text arrived
    llm_max_tokens: int = 400
    llm_support_threshold: float = -1.0  # a generated sentence's support below this is unsupported; < 0 = default

    @property
    def llm_enabled(self) -> bool:
        return bool(self.llm_base_url.strip())

    @property
    def index_dir(self) -> Path:
        return self.index_root / self.index_name

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (values are coerced like TOML / env values)."""
        return _coerce(self, changes)


def load_settings(toml_path: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then `toml_path` (or $RAG_CONFIG), then `RAG_<FIELD>` environment variables."""
    env = os.environ if env is None else env
    settings = Settings()
    toml_path = toml_path or (Path(env["RAG_CONFIG"]) if env.get("RAG_CONFIG") else None)
    if toml_path is not None:
        with open(toml_path, "rb") as fh:
            settings = _coerce(settings, tomllib.load(fh))
    changes = {
        f.name: env[f"RAG_{f.name.upper()}"] for f in dataclasses.fields(Settings) if f"RAG_{f.name.upper()}" in env
    }
    return _coerce(settings, changes)


def _coerce(settings: Settings, changes: Mapping[str, object]) -> Settings:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    out: dict[str, object] = {}
    for name, value in changes.items():
        current = getattr(settings, name)
        out[name] = _convert(name, value, current)
    return dataclasses.replace(settings, **out)  # type: ignore[arg-type]


def _convert(name: str, value: object, current: object) -> object:
    if isinstance(current, bool):
        if isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return bool(value)
    if isinstance(current, int) and not isinstance(current, bool):
        return int(value)  # type: ignore[call-overload]
    if isinstance(current, float):
        return float(value)  # type: ignore[arg-type]
    if isinstance(current, Path):
        return Path(str(value)).expanduser()
    if isinstance(current, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(str(v) for v in value)  # type: ignore[attr-defined]
    if isinstance(current, dict):
        if isinstance(value, str):  # "use=1,e5=1,bm25=0.5"
            pairs = (p.split("=", 1) for p in value.split(",") if p.strip())
            return {k.strip(): float(v) for k, v in pairs}
        return {str(k): float(v) for k, v in dict(value).items()}  # type: ignore[call-overload]
    return str(value)
