"""Who may do what: API keys with scopes (stored hashed), the admin password, widget tokens, rate limits.

`Gate.authenticate` turns what a request carries into a `Principal`; `Principal.require(scope)` raises a
`ServiceError` with a stable code. No web framework is imported here: the UI and the HTTP API both call it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

SCOPES = ("ask", "admin")
KEY_PREFIX = "nqa_"
TOKEN_PREFIX = "nqw_"

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error a client may see: an HTTP status and a stable machine-readable `code`."""

    status = 500
    code = "internal_error"


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class RateLimited(ServiceError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: `name` goes to the audit log, `scopes` say what it may do."""

    name: str
    scopes: frozenset[str] = frozenset()
    address: str = ""

    def require(self, scope: str) -> None:
        if scope in self.scopes:
            return
        if not self.scopes or self.name == "anonymous":  # no credentials at all: say how to give some
            raise Unauthorized(f"this needs credentials with the {scope!r} scope (Authorization: Bearer <key>)")
        what = "the admin password or an API key with the admin scope" if scope == "admin" else f"the {scope!r} scope"
        raise Forbidden(f"this needs {what}")


def is_loopback(host: str) -> bool:
    if host in ("localhost", "testclient"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --------------------------------------------------------------------------- API keys


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key: only the SHA-256 of its secret is kept (the secret is shown once, at creation)."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    sha256: str
    created: str
    revoked: str = ""


class KeyStore:
    """`<data_dir>/keys.json`: API keys, hashed; reread when another process (the CLI) changes it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[float, dict[str, KeyRecord]] | None = None

    def _load(self) -> dict[str, KeyRecord]:
        stamp = self.path.stat().st_mtime if self.path.exists() else 0.0
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        rows = json.loads(self.path.read_text("utf-8")) if self.path.exists() else []
        keys = {r["key_id"]: KeyRecord(**{**r, "scopes": tuple(r["scopes"])}) for r in rows}
        self._cache = (stamp, keys)
        return keys

    def _save(self, keys: dict[str, KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump([asdict(k) for k in keys.values()], fh, indent=1)
        os.replace(tmp, self.path)
        self._cache = None

    def create(self, name: str, scopes: tuple[str, ...]) -> tuple[KeyRecord, str]:
        """A new key; returns its record and the secret (`nqa_<id>_<secret>`), which is not stored."""
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
        key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32)
        token = f"{KEY_PREFIX}{key_id}_{secret}"
        rec = KeyRecord(key_id, name, tuple(scopes), _sha256(token), _now())
        with self._lock:
            keys = dict(self._load())
            keys[key_id] = rec
            self._save(keys)
        return rec, token

    def list(self) -> list[KeyRecord]:
        return sorted(self._load().values(), key=lambda k: k.created)

    def revoke(self, key_id: str) -> KeyRecord:
        with self._lock:
            keys = dict(self._load())
            if key_id not in keys:
                raise KeyError(f"no key {key_id!r}")
            keys[key_id] = rec = _replace(keys[key_id], revoked=_now())
            self._save(keys)
        return rec

    def verify(self, token: str) -> KeyRecord | None:
        """The live key `token` is, or None."""
        if not token.startswith(KEY_PREFIX) or "_" not in token[len(KEY_PREFIX) :]:
            return None
        key_id = token[len(KEY_PREFIX) :].split("_", 1)[0]
        rec = self._load().get(key_id)
        if rec is None or rec.revoked or not hmac.compare_digest(rec.sha256, _sha256(token)):
            return None
        return rec

    def has_admin(self) -> bool:
        return any("admin" in k.scopes and not k.revoked for k in self._load().values())


def _replace(rec: KeyRecord, **changes: str) -> KeyRecord:
    return KeyRecord(**{**asdict(rec), "scopes": rec.scopes, **changes})


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- rate limits and widget tokens


class RateLimiter:
    """At most `limit` events per `window` seconds per key (a sliding window of timestamps)."""

    def __init__(self, limit: int, window: float = 60.0, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.limit, self.window, self.clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str, cost: int = 1) -> float:
        """0 when allowed (and counted; `cost` 0 only looks), else the seconds to wait."""
        now = self.clock()
        with self._lock:
            q = self._events.setdefault(key, deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) + max(cost, 1) > self.limit:
                return q[0] + self.window - now
            q.extend([now] * cost)
            return 0.0


class WidgetTokens:
    """Short-lived tokens bound to one page origin, signed with a server secret; they only allow asking."""

    def __init__(self, secret: bytes, ttl: int = 600, clock=time.time) -> None:  # type: ignore[no-untyped-def]
        self.secret, self.ttl, self.clock = secret, ttl, clock

    def issue(self, origin: str) -> tuple[str, int]:
        exp = int(self.clock()) + self.ttl
        body = base64.urlsafe_b64encode(json.dumps({"o": origin, "e": exp}).encode()).decode().rstrip("=")
        return f"{TOKEN_PREFIX}{body}.{self._sign(body)}", exp

    def verify(self, token: str, origin: str) -> bool:
        if not token.startswith(TOKEN_PREFIX) or "." not in token:
            return False
        body, sig = token[len(TOKEN_PREFIX) :].rsplit(".", 1)
        if not hmac.compare_digest(sig, self._sign(body)):
            return False
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return claims.get("o") == origin and int(claims.get("e", 0)) > self.clock()

    def _sign(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()


def server_secret(data_dir: Path) -> bytes:
    """`<data_dir>/secret` (created 0600 on first use): signs widget tokens across restarts."""
    path = Path(data_dir) / "secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    return path.read_bytes()


# --------------------------------------------------------------------------- the gate


@dataclass(frozen=True, slots=True)
class Policy:
    """Who gets in, decided once at start from the bind address and the settings."""

    admin_password: str = ""
    local_only: bool = True  # bound to a loopback address
    insecure_open: bool = False  # explicitly allowed to serve off-loopback without credentials
    trusted_proxy_header: str = ""  # e.g. X-Forwarded-User, set by an SSO reverse proxy
    admin_users: tuple[str, ...] = ()  # proxy users with the admin scope
    allowed_origins: tuple[str, ...] = ()
    asks_per_minute: int = 600
    logins_per_minute: int = 5


@dataclass
class Gate:
    """Authenticates requests and applies rate limits; one per server."""

    policy: Policy
    keys: KeyStore
    tokens: WidgetTokens
    asks: RateLimiter = field(init=False)
    logins: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.asks = RateLimiter(self.policy.asks_per_minute)
        self.logins = RateLimiter(self.policy.logins_per_minute)

    def admin_configured(self) -> bool:
        p = self.policy
        return bool(p.admin_password or self.keys.has_admin() or (p.trusted_proxy_header and p.admin_users))

    def open_mode(self) -> bool:
        """No credential exists: only local callers (or anyone, with --insecure-open) get every scope."""
        return not self.admin_configured()

    def authenticate(
        self,
        address: str,
        bearer: str = "",
        password: str = "",
        proxy_user: str = "",
        origin: str = "",
        ui_user: str = "",
    ) -> Principal:
        """The caller a request speaks for; Unauthorized for a bad key or password, RateLimited for guessing."""
        p = self.policy
        if password.startswith(KEY_PREFIX) and not bearer:  # an API key typed in the UI's password box
            bearer, password = password, ""
        if bearer:
            rec = self.keys.verify(bearer)
            if rec is not None:
                return Principal(f"key:{rec.key_id}:{rec.name}", frozenset(rec.scopes), address)
            if origin and self.tokens.verify(bearer, origin):
                return Principal(f"widget:{origin}", frozenset({"ask"}), address)
            self._failed_login(address, "API key or token")
            raise Unauthorized("unknown, revoked or expired API key or token")
        if password:
            if p.admin_password and hmac.compare_digest(password.encode(), p.admin_password.encode()):
                self._throttle_login(address)
                return Principal("password", frozenset(SCOPES), address)
            self._failed_login(address, "admin password")
            raise Unauthorized("wrong admin password")
        if p.trusted_proxy_header and proxy_user:
            scopes = SCOPES if proxy_user in p.admin_users else ("ask",)
            return Principal(f"user:{proxy_user}", frozenset(scopes), address)
        if ui_user:  # logged in to the UI (with an API key as password): may ask
            return Principal(f"ui:{ui_user}", frozenset({"ask"}), address)
        if self.open_mode() and (p.insecure_open or is_loopback(address)):
            return Principal("local" if is_loopback(address) else "anonymous", frozenset(SCOPES), address)
        if p.local_only or p.insecure_open:
            return Principal("anonymous", frozenset({"ask"}), address)
        return Principal("anonymous", frozenset(), address)

    def ui_login(self, username: str, password: str) -> bool:
        """The UI's login form off-loopback: the password is an API key (unguessable, so no rate limit needed)."""
        ok = self.keys.verify(password) is not None
        if not ok:
            log.warning("failed UI login for %r", username)
        return ok

    def ui_auth(self) -> str:
        """How the UI pages authenticate: "proxy" (SSO header), "login" (API key as password) or "none"."""
        p = self.policy
        if p.trusted_proxy_header:
            return "proxy"
        return "none" if p.local_only or p.insecure_open else "login"

    def _throttle_login(self, address: str) -> None:
        """Refuse even a right password while an address is over its guessing budget."""
        wait = self.logins.check(f"login:{address}", cost=0)
        if wait:
            raise RateLimited("too many failed logins from this address; try again later", wait)

    def _failed_login(self, address: str, what: str) -> None:
        wait = self.logins.check(f"login:{address}")
        log.warning("failed login (%s) from %s%s", what, address, " — rate limited" if wait else "")
        if wait:
            raise RateLimited("too many failed logins from this address; try again later", wait)

    def count_ask(self, principal: Principal) -> None:
        """RateLimited when this caller (key, user, or address) asks too often."""
        who = principal.name if principal.name.startswith(("key:", "user:")) else f"addr:{principal.address}"
        wait = self.asks.check(who)
        if wait:
            log.warning("rate limited asks from %s", who)
            raise RateLimited("too many questions; slow down", wait)


def gate_for(settings, host: str, insecure_open: bool = False) -> Gate:  # type: ignore[no-untyped-def]
    """The gate of a server bound to `host` with `settings` (a `rag.settings.Settings`)."""
    policy = Policy(
        admin_password=settings.admin_password,
        local_only=is_loopback(host),
        insecure_open=insecure_open,
        trusted_proxy_header=settings.trusted_proxy_header,
        admin_users=tuple(settings.admin_users),
        allowed_origins=tuple(settings.allowed_origins),
        asks_per_minute=settings.asks_per_minute,
        logins_per_minute=settings.logins_per_minute,
    )
    data = Path(settings.data_dir)
    return Gate(policy, KeyStore(data / "keys.json"), WidgetTokens(server_secret(data), settings.widget_token_seconds))


def refuse_to_serve(gate: Gate) -> str:
    """Why a server must not start ("" when it may): off-loopback with no admin credential at all."""
    p = gate.policy
    if p.local_only or p.insecure_open or gate.admin_configured():
        return ""
    return (
        "refusing to serve on a non-loopback address without an admin credential: anyone could change the "
        "index. Set RAG_ADMIN_PASSWORD, or create an admin key (`newsletter-qa keys create NAME --scope admin`), "
        "or pass --insecure-open to serve without one."
    )
