"""Each attack of issue 10, replayed against a real server: it now gets 401/403/429 or has no effect.

The servers run on 127.0.0.1 with the policy of one bound to 0.0.0.0 (an intranet deployment).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from serving import ADMIN_PASSWORD, bearer, running
from test_app import load_app_module

from rag.auth import RateLimiter

EN_Q = "Where was the Seminar on Migrant Integration held?"
DOCTORED = "---\ntitle: 测试通讯\nissue: 7\nlanguage: zh\n---\n\n2021年6月27日，边境管理系统研讨会在拉萨举行。\n"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running(tmp_path_factory.mktemp("sec"), bind="0.0.0.0", logins_per_minute=5) as facts:
        yield facts


def fn_index(blocks: Any, name: str) -> int:
    return next(i for i, f in blocks.fns.items() if getattr(f.fn, "__name__", "") == name)


def call_event(client: httpx.Client, index: int, data: list, headers: dict | None = None) -> Any:
    """What the issue's attacker did: POST /gradio_api/queue/join with an event's fn_index, then read the result."""
    session = uuid.uuid4().hex
    r = client.post(
        "/gradio_api/queue/join",
        json={"data": data, "fn_index": index, "session_hash": session, "event_data": None, "trigger_id": None},
        headers=headers or {},
    )
    if r.status_code != 200:
        return r
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return msg.get("output", {})
    raise AssertionError("no result")


def upload_file(client: httpx.Client, name: str, text: str) -> dict:
    r = client.post("/gradio_api/upload", files={"files": (name, text.encode(), "text/markdown")})
    assert r.status_code == 200, r.text
    return {"path": r.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def test_raw_queue_join_to_upload_and_remove_changes_nothing(srv: dict[str, Any]) -> None:
    service = srv["service"]
    before = {k: d.content_hash for k, d in service.documents().items()}
    upload, remove = fn_index(srv["blocks"], "upload"), fn_index(srv["blocks"], "remove")
    with httpx.Client(base_url=srv["url"], timeout=30) as c:
        # Not signed in: gradio itself refuses the upload and the events.
        assert c.post("/gradio_api/upload", files={"files": ("a.md", b"x", "text/markdown")}).status_code == 401
        assert call_event(c, remove, ["news-zh", "", None]).status_code == 401
        # Signed in with a key that may only ask: the events run, and refuse.
        assert c.post("/login", data={"username": "portal", "password": srv["ask_key"]}).status_code == 200
        f = upload_file(c, "news-zh.md", DOCTORED)
        for password in ("", "guess"):
            out = call_event(c, upload, [[f], password, None])
            assert "nothing was changed" in json.dumps(out, ensure_ascii=False)
            for _ in range(2):  # remove asks for confirmation: press twice
                out = call_event(c, remove, ["news-zh", password, None])
                assert "nothing was changed" in json.dumps(out, ensure_ascii=False)
    assert {k: d.content_hash for k, d in service.documents().items()} == before
    assert "拉萨" not in service.ask("边境管理研讨会在哪里举行？").answer
    assert not (srv["settings"].data_dir / "audit.jsonl").exists()


def test_raw_api_calls_without_credentials_are_refused(srv: dict[str, Any]) -> None:
    with httpx.Client(base_url=srv["url"], timeout=30) as c:
        assert c.post("/v1/ask", json={"question": EN_Q}).status_code == 401  # off-loopback: asks need a key
        assert c.post("/v1/ask", json={"question": EN_Q}, headers=bearer("nqa_dead_beef")).status_code == 401
        assert c.post("/v1/ask", json={"question": EN_Q}, headers=bearer(srv["ask_key"])).status_code == 200
        assert c.delete("/v1/documents/news-zh").status_code == 401
        assert c.delete("/v1/documents/news-zh", headers=bearer(srv["ask_key"])).status_code == 403
        assert c.get("/").status_code in (200, 401) and "Sign in with an API key" in c.get("/").text
        assert c.post("/login", data={"username": "x", "password": "guess"}).status_code == 400
        assert call_event(c, fn_index(srv["blocks"], "api_ask"), [EN_Q, 5, "", "", "", ""]).status_code == 401
    from gradio_client import Client

    keyed = Client(srv["url"], auth=("portal", srv["ask_key"]), verbose=False)
    assert "Hangzhou" in keyed.predict(EN_Q, 5, "", "", "", "", api_name="/ask")["answer"]
    assert "news-zh" in srv["service"].documents()


def test_other_origins_can_neither_read_nor_act(srv: dict[str, Any]) -> None:
    evil = {"Origin": "http://evil.example"}
    with httpx.Client(base_url=srv["url"], timeout=30) as c:
        r = c.get("/v1/documents", headers={**evil, **bearer(srv["ask_key"])})
        assert "access-control-allow-origin" not in r.headers and "access-control-allow-credentials" not in r.headers
        r = c.get("/gradio_api/info", headers=evil)
        assert "access-control-allow-origin" not in r.headers
        r = c.delete("/v1/documents/news-zh", headers={**evil, **bearer(srv["admin_key"])})
        assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
        r = c.post("/gradio_api/queue/join", headers=evil, json={"data": [], "fn_index": 0, "session_hash": "x"})
        assert r.status_code == 403
        r = c.options("/v1/ask", headers={**evil, "Access-Control-Request-Method": "POST"})
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        # Reached by another host name, the server still does not echo the origin.
        r = c.get("/v1/documents", headers={**evil, "Host": "qa.intranet", **bearer(srv["ask_key"])})
        assert "access-control-allow-origin" not in r.headers
    assert "news-zh" in srv["service"].documents()


@pytest.mark.parametrize("path", ["/", "/v1/openapi.json", "/healthz", "/gradio_api/info", "/v1/nope"])
def test_security_headers_on_every_response(srv: dict[str, Any], path: str) -> None:
    r = httpx.get(srv["url"] + path, timeout=30)
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_password_guessing_is_rate_limited_and_logged(srv: dict[str, Any], caplog) -> None:
    srv["gate"].logins = RateLimiter(5)  # earlier tests of this module spent some of the budget
    with httpx.Client(base_url=srv["url"], timeout=30) as c:
        codes = [
            c.delete("/v1/documents/news-zh", headers={"X-Admin-Password": f"guess{i}"}).status_code for i in range(8)
        ]
        assert codes[:5] == [401] * 5 and codes[5:] == [429] * 3, codes
        r = c.delete("/v1/documents/news-zh", headers={"X-Admin-Password": ADMIN_PASSWORD})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0  # even the right one, for a while
    assert any("failed login" in rec.getMessage() for rec in caplog.records)
    assert "news-zh" in srv["service"].documents()


def test_refuses_to_serve_off_loopback_without_admin_credential(tmp_path, monkeypatch, capsys) -> None:
    appmod = load_app_module()
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("RAG_ADMIN_PASSWORD", raising=False)
    assert appmod.main(["--host", "0.0.0.0", "--port", "1"]) == 2
    assert "refusing to serve on a non-loopback address" in capsys.readouterr().out
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # Gradio's convention is honoured
    assert appmod.main([]) == 2
    assert "--insecure-open" in capsys.readouterr().out


def test_sso_proxy_header_vouches_for_users(tmp_path) -> None:
    sso = {"trusted_proxy_header": "X-Forwarded-User", "admin_users": ("alice",)}
    with running(tmp_path, bind="0.0.0.0", **sso) as s, httpx.Client(base_url=s["url"], timeout=30) as c:
        assert c.get("/").status_code == 401  # the UI needs the proxy's user
        assert c.get("/", headers={"X-Forwarded-User": "bob"}).status_code == 200
        bob, alice = {"X-Forwarded-User": "bob"}, {"X-Forwarded-User": "alice"}
        assert c.post("/v1/ask", json={"question": EN_Q}, headers=bob).status_code == 200
        assert c.delete("/v1/documents/nope", headers=bob).status_code == 403
        assert c.delete("/v1/documents/nope", headers=alice).status_code == 404  # allowed; nothing to remove
