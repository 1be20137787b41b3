"""Keys, rate limits, widget tokens and the gate's policy: tiny, exact, no server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from rag.auth import (
    Forbidden,
    Gate,
    KeyStore,
    Policy,
    RateLimited,
    RateLimiter,
    Unauthorized,
    WidgetTokens,
    gate_for,
    is_loopback,
    refuse_to_serve,
)
from rag.cli import main as cli
from rag.server import listen_address
from rag.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_stored_hashed_and_can_be_revoked(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.json")
    rec, secret = store.create("portal", ("ask",))
    assert secret.startswith(f"nqa_{rec.key_id}_") and len(secret) > 40
    raw = (tmp_path / "keys.json").read_text("utf-8")
    assert secret not in raw and secret.split("_", 2)[2] not in raw and rec.sha256 in raw
    assert stat.S_IMODE((tmp_path / "keys.json").stat().st_mode) == 0o600
    assert store.verify(secret) == rec and store.verify(secret + "x") is None and store.verify("nqa_x") is None
    assert not store.has_admin()
    store.revoke(rec.key_id)
    assert store.verify(secret) is None and store.list()[0].revoked
    with pytest.raises(ValueError, match="scopes"):
        store.create("bad", ("root",))
    with pytest.raises(KeyError):
        store.revoke("nope")


def test_keys_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    assert cli(["keys", "create", "ops", "--scope", "ask", "--scope", "admin"]) == 0
    out = capsys.readouterr().out.splitlines()
    secret = out[1]
    key_id = secret.split("_")[1]
    assert out[0].startswith(f"created key {key_id} (ops, scopes ask,admin)")
    assert KeyStore(tmp_path / "keys.json").verify(secret).scopes == ("ask", "admin")
    assert cli(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert f"{key_id}  ops  scopes=ask,admin" in listed and "active" in listed and secret not in listed
    assert cli(["keys", "revoke", key_id]) == 0 and cli(["keys", "revoke", "nope"]) == 2
    assert "revoked" in (capsys.readouterr().out + json.dumps(KeyStore(tmp_path / "keys.json").list()[0].revoked))


def test_rate_limiter_sliding_window() -> None:
    clock = Clock()
    rl = RateLimiter(2, 60, clock)
    assert rl.check("a") == 0 and rl.check("a") == 0 and rl.check("a") == 60
    assert rl.check("b") == 0  # per key
    clock.now += 30
    assert rl.check("a") == 30
    clock.now += 30.5
    assert rl.check("a") == 0


def test_widget_tokens_are_bound_to_origin_and_expire() -> None:
    clock = Clock()
    tokens = WidgetTokens(b"k" * 32, ttl=600, clock=clock)
    token, exp = tokens.issue("https://intranet.example")
    assert exp == 1600 and tokens.verify(token, "https://intranet.example")
    assert not tokens.verify(token, "https://evil.example")
    assert not WidgetTokens(b"other" * 8, clock=clock).verify(token, "https://intranet.example")
    body, sig = token.removeprefix("nqw_").rsplit(".", 1)
    assert not tokens.verify(f"nqw_{body}.{'0' * len(sig)}", "https://intranet.example")
    clock.now += 601
    assert not tokens.verify(token, "https://intranet.example")


def gate(tmp_path: Path, **policy: object) -> Gate:
    return Gate(Policy(**policy), KeyStore(tmp_path / "keys.json"), WidgetTokens(b"s" * 32))  # type: ignore[arg-type]


def test_open_mode_only_for_local_callers(tmp_path: Path) -> None:
    g = gate(tmp_path)  # loopback bind, no credential at all
    assert g.authenticate("127.0.0.1").scopes == {"ask", "admin"}
    stranger = g.authenticate("10.0.0.7")
    assert stranger.scopes == {"ask"}
    with pytest.raises(Unauthorized):
        stranger.require("admin")


def test_secured_gate(tmp_path: Path) -> None:
    g = gate(tmp_path, admin_password="pw", local_only=False)
    _rec, ask = g.keys.create("portal", ("ask",))
    assert g.authenticate("10.0.0.7").scopes == frozenset()
    assert g.authenticate("127.0.0.1").scopes == frozenset()  # no open mode once a credential exists
    with pytest.raises(Unauthorized):
        g.authenticate("10.0.0.7").require("ask")
    who = g.authenticate("10.0.0.7", bearer=ask)
    who.require("ask")
    with pytest.raises(Forbidden):
        who.require("admin")
    g.authenticate("10.0.0.7", password="pw").require("admin")
    _rec, admin = g.keys.create("ops", ("ask", "admin"))
    g.authenticate("10.0.0.7", password=admin).require("admin")  # a key typed in the UI's password box
    with pytest.raises(Unauthorized):
        g.authenticate("10.0.0.7", password="PW")


def test_proxy_users_and_admin_users(tmp_path: Path) -> None:
    g = gate(tmp_path, trusted_proxy_header="X-Forwarded-User", admin_users=("alice",), local_only=False)
    assert g.authenticate("1.2.3.4", proxy_user="alice").scopes == {"ask", "admin"}
    assert g.authenticate("1.2.3.4", proxy_user="bob").scopes == {"ask"}
    assert g.admin_configured() and g.ui_auth() == "proxy"


def test_login_guessing_is_limited_per_address(tmp_path: Path) -> None:
    g = gate(tmp_path, admin_password="pw", logins_per_minute=2)
    for _ in range(2):
        with pytest.raises(Unauthorized):
            g.authenticate("10.0.0.7", password="x")
    with pytest.raises(RateLimited):
        g.authenticate("10.0.0.7", password="x")
    with pytest.raises(RateLimited):
        g.authenticate("10.0.0.7", password="pw")
    assert g.authenticate("10.0.0.8", password="pw").scopes == {"ask", "admin"}


def test_refusal_to_serve_and_listen_address(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert refuse_to_serve(gate_for(s, "0.0.0.0")).startswith("refusing to serve")
    assert refuse_to_serve(gate_for(s, "127.0.0.1")) == ""
    assert refuse_to_serve(gate_for(s, "0.0.0.0", insecure_open=True)) == ""
    assert refuse_to_serve(gate_for(s.replace(admin_password="pw"), "0.0.0.0")) == ""
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "9000"}
    assert listen_address(None, None, env) == ("0.0.0.0", 9000)
    assert listen_address("127.0.0.1", 7000, env) == ("127.0.0.1", 7000)  # flags win
    assert listen_address(None, None, {}) == ("127.0.0.1", 7860)
    assert is_loopback("::1") and is_loopback("127.0.0.2") and not is_loopback("10.0.0.1")


def test_requests_through_a_local_proxy_are_not_local(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from rag.http import authenticate

    g = gate(tmp_path)  # open mode: local callers may change the index

    def request(**headers: str) -> SimpleNamespace:
        return SimpleNamespace(
            headers={k.lower().replace("_", "-"): v for k, v in headers.items()},
            client=SimpleNamespace(host="127.0.0.1"),
        )

    assert "admin" in authenticate(g, request()).scopes
    proxied = authenticate(g, request(x_forwarded_for="10.1.2.3"))
    assert proxied.address == "10.1.2.3" and "admin" not in proxied.scopes
