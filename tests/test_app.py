"""The web UI through its callbacks (fast, on the hash embedder) and through `gradio_client`."""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import shutil
import socket
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from rag import feedback
from rag.auth import gate_for
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.service import Service
from rag.settings import Settings
from tests.contract import ANSWER_KEYS

ROOT = Path(__file__).resolve().parent.parent
EN_Q = "Where was the Seminar on Migrant Integration held?"
ZH_Q = "边境管理研讨会在哪里举行？"


def load_app_module() -> Any:
    """`app.py` lives at the repository root, outside the `rag` package."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module("app")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def appmod() -> Any:
    return load_app_module()


@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test corpus indexed once per module; each test gets its own copy (indexing costs ~0.5 s)."""
    from conftest import write_corpus

    tmp = tmp_path_factory.mktemp("built")
    s = Settings(corpus=write_corpus(tmp / "corpus"), index_root=tmp / "index", embedders=("hash",))
    Pipeline(s, {"hash": HashEmbedder()}).index()
    return s.index_dir


def make_app(
    appmod: Any, settings: Settings, index: Path | None = None, build: bool = False, host: str = "127.0.0.1"
) -> tuple[Any, Any]:
    """(Blocks or None, callbacks) on the hash embedder; building the Blocks costs ~0.3 s, so only on request."""
    if index is not None and not settings.index_dir.exists():
        shutil.copytree(index, settings.index_dir)
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.warm_up()
    service, gate = Service(pipe), gate_for(settings, host)
    if build:
        app = appmod.build_app(service, gate)
        cb = app.callbacks
    else:
        app, cb = None, appmod.Callbacks(service, gate)
    cb.stream_delay = 0.0
    return app, cb


@pytest.fixture
def ui(appmod: Any, settings: Settings, built_index: Path) -> tuple[Any, Any]:
    """The UI's callbacks, exactly as `build_app` wires them (`app.callbacks`), without the Blocks."""
    return make_app(appmod, settings, built_index)


@pytest.fixture
def full_ui(appmod: Any, settings: Settings, built_index: Path) -> tuple[Any, Any]:
    return make_app(appmod, settings, built_index, build=True)


def run_ask(cb: Any, question: str, session: dict, **form: Any) -> list[tuple]:
    f = {"k": 5, "language": "", "issue": "", "date_from": "", "date_to": ""} | form
    return list(cb.ask(question, f["k"], f["language"], f["issue"], f["date_from"], f["date_to"], session))


def is_skip(value: Any) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


def test_build_app_exposes_the_ask_api(appmod: Any, full_ui: tuple[Any, Any]) -> None:
    app, cb = full_ui
    assert isinstance(app.callbacks, appmod.Callbacks) and cb is app.callbacks
    names = {d.api_name for d in app.fns.values() if d.api_visibility == "public"}
    assert names == {"ask"}  # the UI's own events stay private


def test_ask_streams_the_answer_then_shows_sources(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    session = appmod.new_session()
    outs = run_ask(cb, EN_Q, session)
    assert len(outs) >= 3
    chats = [o[0] for o in outs if isinstance(o[0], str)]
    # A slow answer (> 0.15 s, a loaded machine) is preceded by a "Searching the newsletters…" bubble.
    answering = [c for c in chats if "qa-thinking" not in c]
    texts = [c.split('class="answer-text"')[-1] for c in answering if 'class="answer-text"' in c]
    assert len(texts) >= 3 and all(len(a) <= len(b) for a, b in itertools.pairwise(texts))
    assert "streaming" in answering[0] and "streaming" not in answering[-1]
    first = outs[0]
    assert first[3] == ""  # the question box is cleared
    final = outs[-1]
    assert "Hangzhou" in final[0] and 'href="#cite-1"' in final[0]
    assert 'id="cite-1"' in final[1] and "<mark>" in final[1] and "Test Newsletter" in final[1]
    assert all(is_skip(o[1]) for o in outs[:-1])  # sources arrive once, with the whole answer
    assert session["current"] == 0 and session["turns"][0]["answer"].citations


def test_first_output_already_carries_answer_text(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    outs = run_ask(cb, EN_Q, appmod.new_session())
    assert "qa-bot pending" not in outs[0][0] and 'class="answer-text"' in outs[0][0]


def test_slow_pipeline_shows_a_searching_bubble_first(appmod: Any, ui: tuple[Any, Any], monkeypatch) -> None:
    _app, cb = ui
    import time

    real = cb.service.pipeline.ask
    monkeypatch.setattr(cb.service.pipeline, "ask", lambda *a, **kw: (time.sleep(0.3), real(*a, **kw))[1])
    cb.pending_after = 0.05
    outs = run_ask(cb, EN_Q, appmod.new_session())
    assert "qa-bot pending" in outs[0][0] and "Searching the newsletters" in outs[0][0]
    assert "Hangzhou" in outs[-1][0]


def test_chinese_question_switches_labels_unless_language_picked(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    n = 5 + appmod.N_FEEDBACK
    session = appmod.new_session()
    outs = run_ask(cb, ZH_Q, session)
    labels = dict(zip(appmod.LABELLED, outs[0][n:], strict=True))
    assert session["ui_lang"] == "zh" and labels["send"]["value"] == "提问" and "新闻简报问答" in labels["header"]
    assert labels["ui_choice"]["value"] == "简体中文"  # the toggle shows the language the UI switched to
    assert "来源" in outs[-1][1] and "北京" in outs[-1][0]
    again = run_ask(cb, ZH_Q, session)  # same language: labels untouched
    assert all(is_skip(v) for v in again[0][n:])

    picked = appmod.new_session()
    cb.set_language("English", picked)
    outs = run_ask(cb, ZH_Q, picked)
    assert picked["ui_lang"] == "en" and picked["locked"] and all(is_skip(v) for v in outs[0][n:])
    assert "Sources" in outs[-1][1]


def test_abstention_is_shown_as_a_plain_answer(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    outs = run_ask(cb, "zebra quantum volcano", appmod.new_session())
    final = outs[-1]
    assert "qa-abstain" in final[0] and "The newsletters don&#x27;t say" in final[0]
    assert "source-card" not in final[1] and "nothing in the indexed newsletters" in final[1]
    assert outs[0][2] == "" and all("warn" not in str(o[2]) for o in outs)  # not an error
    assert "warn" not in final[0]


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_unaskable_question_gives_a_clear_message(appmod: Any, ui: tuple[Any, Any], question: str) -> None:
    _app, cb = ui
    session = appmod.new_session()
    outs = run_ask(cb, question, session)
    assert len(outs) == 1 and is_skip(outs[0][0])
    assert "empty" in outs[0][2] or "limit is 2000" in outs[0][2]
    assert session["turns"] == []


def test_bad_dates_are_refused_with_a_message(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    outs = run_ask(cb, EN_Q, appmod.new_session(), date_from="2023-13-45")
    assert "ISO date" in outs[0][2] and "2023-13-45" in outs[0][2]
    outs = run_ask(cb, EN_Q, appmod.new_session(), date_from="2024-01-01", date_to="2023-01-01")
    assert "after the end date" in outs[0][2]


def test_filters_restrict_the_sources(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    outs = run_ask(cb, EN_Q, appmod.new_session(), language="zh")
    assert "news-en" not in outs[-1][1]
    outs = run_ask(cb, EN_Q, appmod.new_session(), issue="11", date_from="2023-01-01", date_to="2023-12-31")
    assert 'data-doc="news-en"' in outs[-1][1]
    choices = cb.issue_choices("en")
    assert (
        choices[0] == ("All issues", "")
        and ("7 · 测试通讯", "7") in choices
        and ("11 · Test Newsletter", "11") in choices
    )


def test_open_doc_shows_whole_newsletter_with_passage(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    session = appmod.new_session()
    run_ask(cb, EN_Q, session)
    html, modal = cb.open_doc(1, session)
    doc = cb.documents()["news-en"]
    assert 'id="doc-passage"' in html and "<mark" in html and modal["visible"] is True
    assert html.count("This issue covers the period") == 1 and "port visas" in html  # the whole text
    assert html.index("This issue covers") < html.index("doc-passage") < html.index("port visas")
    assert len(doc.text) > 100
    empty, hidden = cb.open_doc(9, session)
    assert empty == "" and hidden["visible"] is False


def test_earlier_answer_sources_can_be_shown_again(appmod: Any, ui: tuple[Any, Any]) -> None:
    _app, cb = ui
    session = appmod.new_session()
    run_ask(cb, EN_Q, session)
    run_ask(cb, "port visas 144-hour transit", session)
    assert session["current"] == 1
    _chat, sources, session = cb.show_turn(0, session)
    assert session["current"] == 0 and 'data-turn="0"' in sources and "Hangzhou" in sources


def test_feedback_is_stored_with_question_answer_citations_settings(
    appmod: Any, ui: tuple[Any, Any], settings: Settings
) -> None:
    _app, cb = ui
    session = appmod.new_session()
    status, *_ = cb.rate("up", "", session)
    assert "Ask a question first" in status and feedback.read_all(settings.data_dir) == []

    run_ask(cb, EN_Q, session, k=3, issue="11")
    status, session, up, down = cb.rate("up", "", session)
    assert "saved" in status and up["variant"] == "primary" and down["variant"] == "secondary"
    status, box = cb.send_comment("Quote is right but the date is missing.", session)
    assert "saved" in status and box == ""

    rows = feedback.read_all(settings.data_dir)
    assert [r["rating"] for r in rows] == ["up", "up"] and rows[1]["comment"].startswith("Quote is right")
    r = rows[1]
    assert r["question"] == EN_Q and "Hangzhou" in r["answer"] and r["citations"][0]["doc_id"] == "news-en"
    assert r["ui_language"] == "en" and r["language"] == "en" and r["answer_id"] == rows[0]["answer_id"]
    assert r["settings"] == {
        "index_name": "default",
        "embedders": ["hash"],
        "k": 3,
        "filters": {"language": "", "issue": "11", "date_from": "", "date_to": "", "section": ""},
    }
    assert r["time"].endswith("+00:00")

    status, box = cb.send_comment("  ", appmod.new_session())
    assert "Choose" in status
    status, box = cb.send_comment("x" * 10_000_000, session)  # a 10 MB comment is refused, not stored
    assert "10000000 characters long; the limit is 2000" in status and is_skip(box)
    assert len(feedback.read_all(settings.data_dir)) == 2


# --------------------------------------------------------------------------- admin


def _newsletter(folder: Path, name: str = "extra.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / name
    p.write_text("INFOBITES\n\nThe Director General of IOM visited China in April 2023.\n", "utf-8")
    return p


def test_admin_upload_copies_then_indexes(appmod: Any, ui: tuple[Any, Any], settings: Settings, tmp_path) -> None:
    _app, cb = ui
    src = _newsletter(tmp_path / "incoming")
    steps: list[tuple] = []
    status, table, remove_choices, _issues = cb.upload(
        [str(src)], "", None, lambda frac, desc="": steps.append((frac, desc))
    )
    assert "Indexed extra.txt: 1 added" in status and "ok" in status
    assert (settings.data_dir / "uploads" / "extra.txt").read_bytes() == src.read_bytes()
    assert "extra" in cb.documents() and "<td>extra</td>" in table
    assert ("extra · INFOBITES", "extra") in remove_choices["choices"] or any(
        v == "extra" for _l, v in remove_choices["choices"]
    )
    assert steps and any("embed" in d for _f, d in steps)  # progress reached the UI
    assert not list((settings.data_dir / "uploads").glob(".staging-*"))
    session = appmod.new_session()
    assert "Director General" in run_ask(cb, "When did the Director General visit China?", session)[-1][0]


def test_admin_remove_asks_for_confirmation_first(appmod: Any, ui: tuple[Any, Any], settings: Settings) -> None:
    _app, cb = ui
    session = appmod.new_session()
    status, _table, choices, _issues = cb.remove("news-zh", "", session)
    assert "Remove news-zh? Press Remove again" in status and "news-zh" in cb.documents()
    assert is_skip(choices)  # the choice stays selected for the confirming press
    status, table, choices, _issues = cb.remove("news-zh", "", session)
    assert "Removed news-zh" in status and "news-zh" not in cb.documents() and "<td>news-zh</td>" not in table
    assert all(v != "news-zh" for _l, v in choices["choices"])
    status, *_ = cb.remove("news-en", "", session)  # a different newsletter needs its own confirmation
    assert "Press Remove again" in status and "news-en" in cb.documents()
    status, *_ = cb.remove("", "", session)
    assert "Choose a newsletter" in status
    cb.remove("nope", "", session)
    status, *_ = cb.remove("nope", "", session)
    assert "not in index" in status
    audit = [json.loads(line) for line in (settings.data_dir / "audit.jsonl").read_text("utf-8").splitlines()]
    assert [(a["action"], a["doc_id"], a["who"]) for a in audit] == [("remove", "news-zh", "local")]


def test_admin_password_guards_upload_and_remove(
    appmod: Any, settings: Settings, tmp_path: Path, built_index: Path
) -> None:
    locked = dataclasses.replace(settings, admin_password="s3cret", logins_per_minute=100)
    _app, cb = make_app(appmod, locked, built_index)
    src = _newsletter(tmp_path / "incoming")
    for wrong in ("", "S3CRET", "s3cret "):
        status, *_ = cb.upload([str(src)], wrong, None)
        assert "Wrong admin password: nothing was changed." in status
        status, *_ = cb.remove("news-en", wrong, None)
        assert "Wrong admin password" in status
    assert not (locked.data_dir / "uploads" / "extra.txt").exists()
    assert set(cb.documents()) == {"news-en", "news-zh"}
    status, *_ = cb.upload([str(src)], "s3cret", None)
    assert "1 added" in status and "extra" in cb.documents()
    session = appmod.new_session()
    cb.remove("extra", "s3cret", session)
    status, *_ = cb.remove("extra", "s3cret", session)
    assert "Removed extra" in status


def test_oversize_and_wrong_type_uploads_are_refused(
    appmod: Any, settings: Settings, tmp_path: Path, built_index: Path
) -> None:
    small = dataclasses.replace(settings, max_upload_mb=1)
    _app, cb = make_app(appmod, small, built_index)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    big = incoming / "big.txt"
    big.write_text("A sentence about migration policy.\n" * 40_000, "utf-8")  # ~1.4 MB
    exe = incoming / "tool.exe"
    exe.write_bytes(b"MZ\x90\x00" + bytes(100))
    fake_pdf = incoming / "report.pdf"
    fake_pdf.write_text("just text pretending to be a PDF", "utf-8")
    fake_docx = incoming / "memo.docx"
    fake_docx.write_text("not a zip", "utf-8")
    empty_zip = incoming / "other.docx"
    with zipfile.ZipFile(empty_zip, "w") as z:
        z.writestr("hello.txt", "hi")
    binary_txt = incoming / "binary.txt"
    binary_txt.write_bytes(bytes(range(256)) * 8)
    sidecar = incoming / "x.meta.json"
    sidecar.write_text("{}", "utf-8")
    before = set(cb.documents())
    for path, expected in [
        (big, f"big.txt is {big.stat().st_size / 2**20:.1f} MB; the limit is 1 MB."),
        (exe, "tool.exe: unsupported file type .exe"),
        (sidecar, "unsupported file type"),
        (fake_pdf, "report.pdf was refused: the file is not a PDF"),
        (fake_docx, "memo.docx was refused: the file is not a Word .docx document"),
        (empty_zip, "other.docx was refused: the file is not a Word .docx document"),
        (binary_txt, "binary.txt was refused: binary or corrupt file"),
    ]:
        status, *_ = cb.upload([str(path)], "", None)
        assert expected in status, status
        assert "warn" in status
    assert set(cb.documents()) == before
    uploads = small.data_dir / "uploads"
    assert not uploads.exists() or [p.name for p in uploads.iterdir()] == []
    status, *_ = cb.upload([], "", None)
    assert "Choose a file" in status


def test_upload_mixes_good_and_bad_files(appmod: Any, ui: tuple[Any, Any], tmp_path: Path) -> None:
    _app, cb = ui
    good = _newsletter(tmp_path / "in", "good <b>name<b>.txt")
    bad = tmp_path / "in" / "bad.exe"
    bad.write_bytes(b"MZ")
    status, *_ = cb.upload([str(good), str(bad)], "", None)
    assert "1 added" in status and "bad.exe: unsupported" in status and "warn" in status
    assert "good_b_name_b_" in cb.documents()  # the stored name is made safe
    assert "<b>" not in status


# --------------------------------------------------------------------------- API through gradio_client


def test_gradio_client_ask_returns_the_json_contract(appmod: Any, full_ui: tuple[Any, Any], settings: Settings) -> None:
    from gradio_client import Client

    app, _cb = full_ui
    port = free_port()
    server = appmod.serve(app, "127.0.0.1", port, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        out = client.predict(EN_Q, 3, "", "", "", "", api_name="/ask")
        assert list(out) == ANSWER_KEYS
        assert out["language"] == "en" and not out["abstained"] and "Hangzhou" in out["answer"]
        c = out["citations"][0]
        assert set(c) == {
            "n",
            "doc_id",
            "title",
            "issue",
            "section",
            "quote",
            "start",
            "end",
            "passage",
            "score",
            "language",
            "also_in",
            "aligned",
        }
        doc = _cb.documents()[c["doc_id"]]
        assert doc.text[c["start"] : c["end"]] == c["quote"]
        zh = client.predict(ZH_Q, 5, "zh", "", "", "", api_name="/ask")
        assert zh["language"] == "zh" and all(x["language"] == "zh" for x in zh["citations"])
        with pytest.raises(Exception, match="empty"):
            client.predict("", 5, "", "", "", "", api_name="/ask")
        with pytest.raises(Exception, match="ISO date"):
            client.predict(EN_Q, 5, "", "", "yesterday", "", api_name="/ask")
    finally:
        server.close()
