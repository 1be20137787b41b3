"""The HTTP API on a real server (loopback, hash embedder): contract, errors, documents, feedback, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving import ADMIN_PASSWORD, bearer, running

from rag import feedback

EN_Q = "Where was the Seminar on Migrant Integration held?"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with running(tmp_path_factory.mktemp("http")) as facts:
        yield facts


@pytest.fixture
def client(srv: dict[str, Any]):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=srv["url"], timeout=30) as c:
        yield c


def test_ask_returns_the_answer_contract_unchanged(client: httpx.Client, srv: dict[str, Any]) -> None:
    r = client.post("/v1/ask", json={"question": EN_Q, "k": 3, "filters": {"issue": "11"}})
    assert r.status_code == 200, r.text
    out = r.json()
    expected = srv["service"].ask(EN_Q, 3).to_dict()
    assert list(out) == list(expected)  # whatever Answer.to_dict() carries, in its order
    assert out["citations"] == expected["citations"] and "Hangzhou" in out["answer"]
    c = out["citations"][0]
    assert srv["service"].documents()[c["doc_id"]].text[c["start"] : c["end"]] == c["quote"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"question": ""}, 422, "invalid_request"),
        ({"question": "x" * 2001}, 422, "invalid_request"),
        ({"question": "。"}, 200, None),
        ({"question": EN_Q, "filters": {"date_from": "yesterday"}}, 422, "invalid_request"),
        ({"question": EN_Q, "filters": {"date_from": "2023-13-45"}}, 400, "invalid_filter"),
        ({"question": EN_Q, "filters": {"date_from": "2024-01-01", "date_to": "2023-01-01"}}, 400, "invalid_filter"),
        ({"question": EN_Q, "k": 0}, 422, "invalid_request"),
        ({"question": EN_Q, "filters": {"language": "fr"}}, 422, "invalid_request"),
        ({"nothing": 1}, 422, "invalid_request"),
    ],
)
def test_errors_are_json_with_a_stable_code(client: httpx.Client, body: dict, status: int, code: str) -> None:
    r = client.post("/v1/ask", json=body)
    assert r.status_code == status and (r.json()["error"]["code"] if code else None) == code, r.text
    assert "Traceback" not in r.text


def test_malformed_json_and_unknown_routes_are_json_errors(client: httpx.Client) -> None:
    r = client.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_crash_is_a_500_without_traceback(client: httpx.Client, srv: dict[str, Any], monkeypatch) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret internals /etc/passwd")

    monkeypatch.setattr(srv["service"].pipeline, "ask", boom)
    r = client.post("/v1/ask", json={"question": EN_Q})
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text


def test_stream_sends_deltas_then_the_answer(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/ask/stream", json={"question": EN_Q}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in text.strip().split("\n\n")
    ]
    assert [e for e, _ in events[:-1]] == ["delta"] * (len(events) - 1) and events[-1][0] == "answer"
    assert "".join(d["text"] for _e, d in events[:-1]) == events[-1][1]["answer"]


def test_search_lists_passages(client: httpx.Client) -> None:
    r = client.post("/v1/search", json={"question": EN_Q, "k": 2})
    hits = r.json()["hits"]
    assert r.status_code == 200 and 1 <= len(hits) <= 2 and hits[0]["doc_id"] == "news-en"


def test_documents_add_keeps_metadata_and_remove_needs_admin(client: httpx.Client, srv: dict[str, Any]) -> None:
    docs = {d["doc_id"]: d for d in client.get("/v1/documents").json()["documents"]}
    assert docs["news-en"]["title"] == "Test Newsletter" and docs["news-en"]["issue"] == "11"
    text = Path(srv["settings"].corpus / "news-en.txt").read_text("utf-8") + "\nA new closing sentence.\n"
    files = {"files": ("news-en.txt", text.encode(), "text/plain")}
    r = client.post("/v1/documents", files=files)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = client.post("/v1/documents", files=files, headers=bearer(srv["ask_key"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = client.post("/v1/documents", files=files, headers=bearer(srv["admin_key"]))
    assert r.status_code == 200 and r.json()["updated"] == ["news-en"], r.text
    doc = client.get("/v1/documents").json()["documents"]
    en = next(d for d in doc if d["doc_id"] == "news-en")
    assert (en["title"], en["issue"], en["date_start"]) == ("Test Newsletter", "11", "2022-05-01")  # kept
    r = client.post(
        "/v1/documents", files=files, data={"title": "Renamed"}, headers={"X-Admin-Password": ADMIN_PASSWORD}
    )
    en = next(d for d in client.get("/v1/documents").json()["documents"] if d["doc_id"] == "news-en")
    assert r.status_code == 200 and en["title"] == "Renamed" and en["issue"] == "11"  # replaced only when given
    r = client.delete("/v1/documents/nope", headers=bearer(srv["admin_key"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    audit = (srv["settings"].data_dir / "audit.jsonl").read_text("utf-8").splitlines()
    assert [json.loads(a)["who"].split(":")[0] for a in audit] == ["key", "password"]


def test_upload_limits(client: httpx.Client, srv: dict[str, Any]) -> None:
    many = [("files", (f"n{i}.txt", b"Some newsletter text.", "text/plain")) for i in range(11)]
    r = client.post("/v1/documents", files=many, headers=bearer(srv["admin_key"]))
    assert r.status_code == 400 and "limit is 10" in r.json()["error"]["message"]
    r = client.post(
        "/v1/documents", files={"files": ("x.exe", b"MZ", "application/octet-stream")}, headers=bearer(srv["admin_key"])
    )
    assert r.status_code == 200 and r.json()["refused"] == [{"name": "x.exe", "reason": "unsupported file type .exe"}]


def test_feedback_is_length_limited_and_stored(client: httpx.Client, srv: dict[str, Any]) -> None:
    r = client.post("/v1/feedback", json={"rating": "up", "comment": '=HYPERLINK("http://x")', "question": EN_Q})
    assert r.status_code == 200
    rows = feedback.read_all(srv["settings"].data_dir)
    assert rows[-1]["comment"].startswith("=HYPERLINK") and rows[-1]["source"] == "api"
    assert feedback.flatten(rows[-1])["comment"].startswith("'=HYPERLINK")  # inert in a spreadsheet
    r = client.post("/v1/feedback", json={"rating": "up", "comment": "x" * 2001})
    assert r.status_code == 400 and "limit is 2000" in r.json()["error"]["message"]
    r = client.post(
        "/v1/feedback",
        content=b'{"comment": "' + b"x" * 10_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"  # refused before it is read
    assert len(feedback.read_all(srv["settings"].data_dir)) == len(rows)


def test_healthz_metrics_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "documents": 2, "chunks": 4}
    client.post("/v1/ask", json={"question": EN_Q})
    m = client.get("/metrics").text
    assert 'newsletter_qa_requests_total{route="/v1/ask",method="POST",status="200"}' in m
    assert 'newsletter_qa_request_seconds_bucket{route="/v1/ask",le="+Inf"}' in m
    assert "newsletter_qa_index_documents 2" in m
    spec = client.get("/v1/openapi.json").json()
    assert {
        "/v1/ask",
        "/v1/ask/stream",
        "/v1/search",
        "/v1/documents",
        "/v1/documents/{doc_id}",
        "/v1/feedback",
        "/v1/chat/completions",
        "/healthz",
        "/metrics",
    } <= set(spec["paths"])
    ask = spec["paths"]["/v1/ask"]["post"]["responses"]
    assert ask["400"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")


def test_official_openai_client(srv: dict[str, Any]) -> None:
    from openai import OpenAI

    client = OpenAI(base_url=srv["url"] + "/v1", api_key=srv["ask_key"])
    assert [m.id for m in client.models.list()] == ["newsletter-qa"]
    reply = client.chat.completions.create(model="newsletter-qa", messages=[{"role": "user", "content": EN_Q}])
    assert "Hangzhou" in reply.choices[0].message.content and "[1]" in reply.choices[0].message.content
    extra = reply.model_extra
    assert extra["citations"][0]["doc_id"] == "news-en" and extra["newsletter_qa"]["abstained"] is False
    stream = client.chat.completions.create(
        model="newsletter-qa", messages=[{"role": "user", "content": "边境管理研讨会在哪里举行？"}], stream=True
    )
    parts = list(stream)
    text = "".join(p.choices[0].delta.content or "" for p in parts)
    assert "北京" in text and parts[-1].choices[0].finish_reason == "stop"
    assert parts[-1].model_extra["citations"][0]["language"] == "zh"
