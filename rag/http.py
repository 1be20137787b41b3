"""The HTTP API (`/v1/*`, `/healthz`, `/metrics`, `/widget.js`) on the service, as a FastAPI app.

Every error is JSON `{"error": {"code": "...", "message": "..."}}` with a stable code; no traceback ever
reaches a client. The web UI is mounted into this same app by `app.py`.
"""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag import openai_compat, widget
from rag.auth import Gate, Principal, ServiceError, is_loopback
from rag.render import stream_prefixes
from rag.service import BadRequest, Service, Upload, parse_filters
from rag.telemetry import Metrics
from rag.types import Turn
from rag.websecurity import origin_of

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- schemas


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class FiltersIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    language: str = Field(default="", pattern=r"^(|en|zh)$")
    issue: str = Field(default="", max_length=50)
    date_from: str = Field(default="", pattern=r"^(\d{4}-\d{2}-\d{2})?$", description="YYYY-MM-DD")
    date_to: str = Field(default="", pattern=r"^(\d{4}-\d{2}-\d{2})?$", description="YYYY-MM-DD")
    section: str = Field(default="", max_length=200)


class TurnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., max_length=2000)
    answer: str = Field(default="", max_length=20_000)


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(..., min_length=1, max_length=2000, pattern=r"\S", description="English or Chinese")
    k: int | None = Field(default=None, ge=1, le=50)
    filters: FiltersIn = FiltersIn()
    history: list[TurnIn] = Field(
        default_factory=list,
        max_length=20,
        description="earlier turns of the conversation, oldest first: a follow-up question is read with them",
    )

    def turns(self) -> tuple[Turn, ...]:
        return tuple(Turn(t.question, t.answer) for t in self.history)


class SentenceOut(BaseModel):
    text: str
    cites: list[int]
    supported: bool
    support: float


class AnswerOut(BaseModel):
    """The JSON contract of `Answer.to_dict()`; fields added there flow through unchanged."""

    model_config = ConfigDict(extra="allow")
    question: str
    language: str
    abstained: bool
    verdict: str = Field(description="answer, closest (shown, but possibly not answering) or abstain")
    confidence: float = Field(ge=0, le=1, description="calibrated probability that the passages answer")
    answer: str
    citations: list[dict[str, Any]]
    timings_ms: dict[str, float]
    mode: str = Field(description="extractive (quoted sentences) or generated (written by the configured LLM)")
    sentences: list[SentenceOut] = Field(
        description="generated mode: each sentence the LLM wrote, its [n] citations and whether they support it"
    )
    notice: str = Field(description="why a generated answer fell back to the extractive one, or empty")
    resolved_question: str = Field(description="the standalone question a follow-up was read as")


class HitOut(BaseModel):
    doc_id: str
    chunk_id: str
    title: str
    issue: str
    section: str
    language: str
    start: int
    end: int
    text: str
    score: float


class SearchOut(BaseModel):
    question: str
    hits: list[HitOut]


class DocumentOut(BaseModel):
    doc_id: str
    title: str
    issue: str
    period: str
    date_start: str
    date_end: str
    language: str
    edition_of: str
    chars: int


class DocumentsOut(BaseModel):
    documents: list[DocumentOut]


class RefusalOut(BaseModel):
    name: str
    reason: str


class AddOut(BaseModel):
    accepted: list[str]
    refused: list[RefusalOut]
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    chunks: int


class RemoveOut(BaseModel):
    removed: list[str]
    chunks: int


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rating: str | None = Field(default=None, pattern=r"^(up|down)$")
    comment: str = Field(default="", max_length=100_000)
    question: str = Field(default="", max_length=10_000)
    answer: str = Field(default="", max_length=100_000)
    answer_id: str = Field(default="", max_length=100)


class OkOut(BaseModel):
    ok: bool


class HealthOut(BaseModel):
    status: str
    documents: int
    chunks: int


class TokenOut(BaseModel):
    token: str
    expires_at: int
    origin: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str = openai_compat.MODEL_ID
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False


JSON_LIMIT = 1024 * 1024  # bytes of a JSON request body
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 413, 422, 429, 503)
}


# --------------------------------------------------------------------------- the app


def create_api(service: Service, gate: Gate, metrics: Metrics | None = None) -> FastAPI:
    """The API app; `app.py` mounts the UI into it. State: `app.state.service`, `.gate`, `.metrics`."""
    api = FastAPI(
        title="newsletter-qa",
        version="1",
        description="Bilingual (English / 中文) question answering over newsletter archives, with exact citations.",
        docs_url="/v1/docs",
        redoc_url=None,
        openapi_url="/v1/openapi.json",
    )
    api.state.service, api.state.gate, api.state.metrics = service, gate, metrics or Metrics()
    _handlers(api)

    s = service.settings
    upload_limit = (s.max_upload_files * s.max_upload_mb + 1) * 1024 * 1024

    @api.middleware("http")
    async def measure(request: Request, call_next):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        size = int(request.headers.get("content-length") or 0)
        limit = upload_limit if request.url.path == "/v1/documents" else JSON_LIMIT
        if request.url.path.startswith("/v1/") and size > limit:  # refused before the body is read
            return JSONResponse(
                {"error": {"code": "too_large", "message": f"the request body is over {limit} bytes"}}, 413
            )
        response = await call_next(request)
        route = request.scope.get("route")
        label = getattr(route, "path", "") or "other"
        api.state.metrics.observe(
            label if label != "/" else "ui", request.method, response.status_code, time.perf_counter() - t0
        )
        return response

    def principal(request: Request) -> Principal:
        return authenticate(gate, request)

    def asker(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
        who.require("ask")
        gate.count_ask(who)
        return who

    def admin(who: Principal = Depends(principal)) -> Principal:  # noqa: B008
        who.require("admin")
        return who

    @api.post("/v1/ask", response_model=AnswerOut, responses=ERRORS, tags=["questions"])
    def ask(body: AskIn, _who: Principal = Depends(asker)) -> dict[str, Any]:  # noqa: B008
        """Answer a question from the newsletters, with citations, or abstain (`abstained: true`)."""
        filters = parse_filters(**body.filters.model_dump())
        return service.ask(body.question, body.k, filters, body.turns()).to_dict()

    @api.post(
        "/v1/ask/stream",
        responses={**ERRORS, 200: {"content": {"text/event-stream": {}}}},
        response_class=StreamingResponse,
        tags=["questions"],
    )
    def ask_stream(body: AskIn, _who: Principal = Depends(asker)) -> StreamingResponse:  # noqa: B008
        """Server-sent events: `delta` events carry answer text, then one `answer` event carries the contract.

        With an LLM configured, a `draft` event (the extractive answer) comes first and the deltas are the LLM's
        text as it writes; the `answer` event's text is authoritative (unsupported sentences removed)."""
        events = service.stream(body.question, body.k, parse_filters(**body.filters.model_dump()), body.turns())
        first = next(events)  # a bad question or an unavailable index fails here, as a JSON error

        def lines() -> Any:
            for e in itertools.chain([first], events):
                yield f"event: {e['event']}\ndata: {json.dumps(e['data'], ensure_ascii=False)}\n\n"

        return StreamingResponse(lines(), media_type="text/event-stream")

    @api.post("/v1/search", response_model=SearchOut, responses=ERRORS, tags=["questions"])
    def search(body: AskIn, _who: Principal = Depends(asker)) -> dict[str, Any]:  # noqa: B008
        """The ranked passages for a question, without an answer."""
        hits = service.search(body.question, body.k, parse_filters(**body.filters.model_dump()))
        docs = service.documents()
        return {"question": body.question, "hits": [_hit(h, docs) for h in hits]}

    @api.get("/v1/documents", response_model=DocumentsOut, responses=ERRORS, tags=["documents"])
    def list_documents(_who: Principal = Depends(asker)) -> dict[str, Any]:  # noqa: B008
        """The indexed newsletters."""
        return {"documents": [_document(d) for _k, d in sorted(service.documents().items())]}

    @api.post("/v1/documents", response_model=AddOut, responses=ERRORS, tags=["documents"])
    def add_documents(
        request: Request,
        files: list[UploadFile] = File(...),  # noqa: B008
        title: str = Form(""),
        issue: str = Form(""),
        period: str = Form(""),
        date_start: str = Form(""),
        date_end: str = Form(""),
        who: Principal = Depends(admin),  # noqa: B008
    ) -> dict[str, Any]:
        """Upload and index newsletters (admin). Metadata fields given here replace the stored ones."""
        meta = {"title": title, "issue": issue, "period": period, "date_start": date_start, "date_end": date_end}
        with tempfile.TemporaryDirectory(prefix="nqa-upload-") as tmp:
            uploads = []
            for i, f in enumerate(files):
                path = Path(tmp) / f"{i}-{Path(f.filename or 'upload.txt').name}"
                with open(path, "wb") as out:
                    shutil.copyfileobj(f.file, out)
                uploads.append(Upload(path, f.filename or "upload.txt", meta))
            res = service.add(who, uploads)
        rep = res.report
        return {
            "accepted": list(res.accepted),
            "refused": [{"name": r.name, "reason": r.reason} for r in res.refused],
            "added": list(rep.added) if rep else [],
            "updated": list(rep.updated) if rep else [],
            "unchanged": list(rep.unchanged) if rep else [],
            "chunks": rep.chunks if rep else 0,
        }

    @api.delete("/v1/documents/{doc_id}", response_model=RemoveOut, responses=ERRORS, tags=["documents"])
    def remove_document(doc_id: str, who: Principal = Depends(admin)) -> dict[str, Any]:  # noqa: B008
        """Remove one newsletter (admin)."""
        rep = service.remove(who, doc_id)
        return {"removed": list(rep.removed), "chunks": rep.chunks}

    @api.post("/v1/feedback", response_model=OkOut, responses=ERRORS, tags=["feedback"])
    def post_feedback(body: FeedbackIn, who: Principal = Depends(asker)) -> dict[str, Any]:  # noqa: B008
        """A rating or comment on an answer; stored in `var/feedback.jsonl`."""
        service.feedback({**body.model_dump(), "source": "api", "who": who.name})
        return {"ok": True}

    @api.get("/healthz", response_model=HealthOut, responses={503: {"model": ErrorBody}}, tags=["operations"])
    def healthz() -> dict[str, Any]:
        """Ready when the index opens."""
        stats = service.stats()
        return {"status": "ok", "documents": stats["documents"], "chunks": stats["chunks"]}

    @api.get("/metrics", response_class=PlainTextResponse, tags=["operations"])
    def metrics_text() -> str:
        """Prometheus metrics: requests, latency histogram, index size."""
        try:
            gauges = {k: float(v) for k, v in service.stats().items()}
        except ServiceError:
            gauges = {}
        return api.state.metrics.render(gauges)

    @api.get("/v1/models", tags=["openai"])
    def models(_who: Principal = Depends(asker)) -> dict[str, Any]:  # noqa: B008
        """The one "model" this server offers, for OpenAI-compatible front ends."""
        return {"object": "list", "data": [{"id": openai_compat.MODEL_ID, "object": "model", "owned_by": "local"}]}

    @api.post("/v1/chat/completions", responses=ERRORS, tags=["openai"])
    def chat(body: ChatIn, _who: Principal = Depends(asker)) -> Any:  # noqa: B008
        """OpenAI-compatible: the reply is the answer with [n] markers; `citations` carries the sources.

        Earlier messages are the conversation: a follow-up question is read with them. The streamed reply is
        the verified answer (an OpenAI client cannot take back text it has shown)."""
        messages = [m.model_dump() for m in body.messages]
        answer = service.ask(openai_compat.question_of(messages), history=openai_compat.history_of(messages))
        if not body.stream:
            return openai_compat.completion(answer, body.model)
        pieces, sent = [], ""
        for prefix in stream_prefixes(answer.answer):
            pieces.append(prefix[len(sent) :])
            sent = prefix
        events = [
            f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in openai_compat.chunks(answer, body.model, pieces)
        ]
        return StreamingResponse(iter([*events, "data: [DONE]\n\n"]), media_type="text/event-stream")

    @api.post("/v1/widget/token", response_model=TokenOut, responses=ERRORS, tags=["widget"])
    def widget_token(request: Request) -> dict[str, Any]:
        """A short-lived token for the page's own origin, which must be allowed (`allowed_origins`)."""
        origin = origin_of(request.headers.get("origin", ""))
        if not origin or origin not in {origin_of(o) for o in gate.policy.allowed_origins}:
            raise _Forbidden("this page's origin is not allowed to embed the assistant")
        token, exp = gate.tokens.issue(origin)
        return {"token": token, "expires_at": exp, "origin": origin}

    @api.get("/widget.js", tags=["widget"], response_class=Response)
    def widget_js(request: Request) -> Response:
        """The `<newsletter-qa>` web component."""
        return Response(widget.SCRIPT, media_type="text/javascript; charset=utf-8")

    @api.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str) -> None:
        """Unknown API paths answer in the API's JSON, not with the UI's 404 page."""
        raise _NotFound(f"no API route /v1/{rest}")

    return api


class _NotFound(ServiceError):
    status = 404
    code = "not_found"


class _Forbidden(ServiceError):
    status = 403
    code = "origin_not_allowed"


def proxy_user(gate: Gate, request: Any) -> str:
    """The user an SSO reverse proxy vouches for ("" when none); only a proxy on this host is believed."""
    header = gate.policy.trusted_proxy_header
    peer = request.client.host if request.client else ""
    return request.headers.get(header, "").strip() if header and is_loopback(peer) else ""


def authenticate(gate: Gate, request: Any, password: str = "") -> Principal:
    """The principal of a FastAPI or gradio request (anything with `.headers` and `.client.host`)."""
    headers = request.headers
    peer = request.client.host if request.client else ""
    auth = headers.get("authorization", "")
    bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    user, address = proxy_user(gate, request), peer
    if is_loopback(peer) and headers.get("x-forwarded-for"):  # through a proxy on this host: not a local caller
        address = headers["x-forwarded-for"].split(",")[0].strip() or "proxied"
    return gate.authenticate(
        address,
        bearer=bearer,
        password=password or headers.get("x-admin-password", ""),
        proxy_user=user,
        origin=origin_of(headers.get("origin", "")),
        ui_user=str(getattr(request, "username", None) or ""),
    )


def _handlers(api: FastAPI) -> None:
    def body(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)

    @api.exception_handler(ServiceError)
    async def service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if hasattr(exc, "retry_after") else None
        if exc.status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return body(exc.status, exc.code, str(exc) or exc.code, headers)

    @api.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return body(422, "invalid_request", f"{where or 'request'}: {first.get('msg', 'invalid')}")

    @api.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        return body(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @api.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return body(500, "internal_error", "internal error; the server log has the details")


def _hit(h: Any, docs: dict[str, Any]) -> dict[str, Any]:
    c = h.chunk
    doc = docs.get(c.doc_id)
    return {
        "doc_id": c.doc_id,
        "chunk_id": c.chunk_id,
        "title": doc.meta.title if doc else "",
        "issue": str(doc.meta.issue) if doc else "",
        "section": c.section,
        "language": c.language,
        "start": c.start,
        "end": c.end,
        "text": c.text,
        "score": round(float(h.score), 4),
    }


def _document(d: Any) -> dict[str, Any]:
    m = d.meta
    return {
        "doc_id": d.doc_id,
        "title": m.title,
        "issue": str(m.issue),
        "period": m.period,
        "date_start": m.date_start,
        "date_end": m.date_end,
        "language": d.language,
        "edition_of": m.edition_of,
        "chars": len(d.text),
    }


__all__ = ["BadRequest", "authenticate", "create_api", "proxy_user"]
