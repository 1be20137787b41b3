"""Feedback storage: append-only JSON Lines, safe under concurrent writers, exported as CSV or JSONL."""

from __future__ import annotations

import csv
import io
import json
import threading
from pathlib import Path

import pytest

from rag import feedback
from rag.cli import main


def _entry(i: int = 0, rating: str | None = "up") -> dict:
    return {
        "answer_id": f"a{i}",
        "rating": rating,
        "comment": f"comment {i}, with a comma and 中文",
        "question": "Where was the Seminar on Migrant Integration held?",
        "language": "en",
        "abstained": False,
        "answer": "It was held in Hangzhou, China. [1]",
        "citations": [
            {
                "n": 1,
                "doc_id": "news-en",
                "start": 93,
                "end": 171,
                "score": 0.8312,
                "quote": "…",
                "title": "T",
            },
            {"n": 2, "doc_id": "news-zh", "start": 5, "end": 40, "score": 0.5, "quote": "…", "title": "T"},
        ],
        "ui_language": "en",
        "settings": {
            "index_name": "default",
            "embedders": ["use", "e5"],
            "k": 5,
            "filters": {"language": "", "issue": "11", "date_from": "", "date_to": "", "section": ""},
        },
    }


def test_record_then_read_back_with_utc_time(tmp_path: Path) -> None:
    feedback.record(tmp_path, _entry(1))
    feedback.record(tmp_path, _entry(2, "down"))
    rows = feedback.read_all(tmp_path)
    assert [r["answer_id"] for r in rows] == ["a1", "a2"] and rows[1]["rating"] == "down"
    assert rows[0]["time"].endswith("+00:00") and rows[0]["citations"][0]["doc_id"] == "news-en"
    assert rows[0]["comment"] == "comment 1, with a comma and 中文"
    assert feedback.read_all(tmp_path / "nothing-yet") == []


def test_record_only_appends(tmp_path: Path) -> None:
    feedback.record(tmp_path, _entry(1))
    path = feedback.feedback_path(tmp_path)
    first = path.read_bytes()
    feedback.record(tmp_path, _entry(2))
    assert path.read_bytes().startswith(first)  # earlier entries are never rewritten
    assert len(path.read_text("utf-8").splitlines()) == 2


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    feedback.record(tmp_path, _entry(1))
    with open(feedback.feedback_path(tmp_path), "a", encoding="utf-8") as fh:
        fh.write('{"answer_id": "half')  # a writer killed mid-line
    assert [r["answer_id"] for r in feedback.read_all(tmp_path)] == ["a1"]


def test_concurrent_appends_do_not_interleave(tmp_path: Path) -> None:
    big = "x" * 20_000  # bigger than a pipe buffer / stdio buffer: would tear without the lock

    def writer(w: int) -> None:
        for i in range(25):
            feedback.record(tmp_path, {**_entry(w * 100 + i), "comment": f"{w}:{i}:{big}"})

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = feedback.feedback_path(tmp_path).read_text("utf-8").splitlines()
    assert len(lines) == 200
    rows = [json.loads(line) for line in lines]  # every line is one whole entry
    assert sorted(r["answer_id"] for r in rows) == sorted(f"a{w * 100 + i}" for w in range(8) for i in range(25))
    assert all(r["comment"].endswith(big) for r in rows)


def test_export_jsonl_round_trips(tmp_path: Path) -> None:
    for i in range(3):
        feedback.record(tmp_path, _entry(i))
    out = tmp_path / "out" / "feedback.jsonl"
    assert feedback.export(tmp_path, "jsonl", out) == 0
    assert [json.loads(x) for x in out.read_text("utf-8").splitlines()] == feedback.read_all(tmp_path)


def test_export_csv_flattens_citations_and_settings(tmp_path: Path) -> None:
    feedback.record(tmp_path, _entry(1))
    feedback.record(tmp_path, _entry(2, None))
    out = tmp_path / "feedback.csv"
    feedback.export(tmp_path, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.read_text("utf-8"))))
    assert list(rows[0]) == list(feedback.CSV_COLUMNS)
    assert rows[0]["citations"] == "[1] news-en:93-171 (0.83); [2] news-zh:5-40 (0.50)"
    assert rows[0]["embedders"] == "use,e5" and rows[0]["k"] == "5" and rows[0]["index_name"] == "default"
    assert json.loads(rows[0]["filters"]) == {"issue": "11"}
    assert rows[0]["comment"] == "comment 1, with a comma and 中文" and rows[0]["abstained"] == "False"
    assert rows[1]["rating"] == ""


def test_export_rejects_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="csv or jsonl"):
        feedback.export(tmp_path, "xml", None)


def test_cli_feedback_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    feedback.record(tmp_path, _entry(1))
    feedback.record(tmp_path, _entry(2, "down"))

    assert main(["feedback", "export"]) == 0  # CSV to stdout by default
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rating"] for r in rows] == ["up", "down"]

    out = tmp_path / "export.jsonl"
    assert main(["feedback", "export", "--format", "jsonl", "--out", str(out)]) == 0
    assert [json.loads(x)["answer_id"] for x in out.read_text("utf-8").splitlines()] == ["a1", "a2"]


def test_the_rating_after_a_torn_line_is_kept(tmp_path: Path) -> None:
    feedback.record(tmp_path, _entry(1))
    with open(feedback.feedback_path(tmp_path), "a", encoding="utf-8") as fh:
        fh.write('{"answer_id": "half')  # a writer killed mid-line
    feedback.record(tmp_path, _entry(2))
    feedback.record(tmp_path, _entry(3))
    assert [r["answer_id"] for r in feedback.read_all(tmp_path)] == ["a1", "a2", "a3"]
