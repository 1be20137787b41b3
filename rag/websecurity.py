"""ASGI middleware in front of everything the server answers: origin checks, CORS, security headers.

- A request whose `Origin` is neither the server itself nor in `allowed_origins` may not change anything
  (403 for every method but GET/HEAD) and gets no CORS header, so no other web page can read or act.
- Allowed origins get `Access-Control-Allow-Origin: <origin>` (never `*`, never with credentials: the widget
  sends a bearer token, not cookies).
- Every response carries CSP, nosniff, Referrer-Policy; pages may be framed only by allowed origins.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

Scope = dict[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

SAFE_METHODS = ("GET", "HEAD")
_STRIP = {
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-allow-methods",
    b"access-control-allow-headers",
    b"access-control-max-age",
    b"x-frame-options",
    b"content-security-policy",
}

# Gradio's page runs inline scripts and builds the gr.HTML handlers with `new Function`.
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; media-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'"
)
WIDGET_PATHS = ("/widget.js",)


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


class SecurityMiddleware:
    """Wraps the whole ASGI app (API and UI alike)."""

    def __init__(self, app: ASGI, allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {origin_of(o) or o.lower() for o in allowed_origins}

    async def __call__(self, scope: Scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            if scope["type"] == "websocket" and not self._same_or_allowed(scope):
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin", "")
        method = scope["method"]
        same = not origin or self._is_self(origin, headers.get("host", ""))
        allowed = same or origin.lower() in self.allowed
        if not allowed and method not in SAFE_METHODS:
            await _json(send, 403, "origin_not_allowed", f"requests from {origin} are not allowed", origin="")
            return
        if method == "OPTIONS" and origin and "access-control-request-method" in headers:
            await self._preflight(send, origin if allowed else "")
            return
        cors_origin = origin if (allowed and not same) else ""
        path = scope.get("path", "")

        async def send_wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _STRIP]
                message = {**message, "headers": kept + self._headers(path, cors_origin)}
            await send(message)

        await self.app(scope, receive, send_wrapped)

    def _same_or_allowed(self, scope: Scope) -> bool:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        origin = headers.get("origin", "")
        return not origin or self._is_self(origin, headers.get("host", "")) or origin.lower() in self.allowed

    @staticmethod
    def _is_self(origin: str, host: str) -> bool:
        return bool(host) and urlsplit(origin).netloc.lower() == host.lower()

    def _headers(self, path: str, cors_origin: str) -> list[tuple[bytes, bytes]]:
        ancestors = " ".join(["'self'", *sorted(self.allowed)]) if path.startswith("/widget") else "'none'"
        out = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"content-security-policy", f"{PAGE_CSP}; frame-ancestors {ancestors}".encode()),
            (b"cross-origin-opener-policy", b"same-origin"),
        ]
        if ancestors == "'none'":
            out.append((b"x-frame-options", b"DENY"))
        if cors_origin:
            out += [(b"access-control-allow-origin", cors_origin.encode()), (b"vary", b"Origin")]
        return out

    async def _preflight(self, send, origin: str) -> None:  # type: ignore[no-untyped-def]
        headers = [(b"x-content-type-options", b"nosniff"), (b"vary", b"Origin")]
        if origin:
            headers += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-allow-headers", b"authorization, content-type"),
                (b"access-control-max-age", b"600"),
            ]
        await send({"type": "http.response.start", "status": 204 if origin else 403, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


async def _json(send, status: int, code: str, message: str, origin: str) -> None:  # type: ignore[no-untyped-def]
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"x-frame-options", b"DENY"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
