"""`newsletter-qa` in-process on the hash embedder: bad input, batch JSON, index management, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main
from rag.store import open_index
from tests.contract import ANSWER_KEYS, CITATION_KEYS, rag_env


@pytest.fixture
def env(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings for `main` through RAG_* variables: hash embedder, index root under tmp_path."""
    return rag_env(monkeypatch, tmp_path, corpus, abstain_threshold="0.2")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("question", ["", "   \n\t "])
def test_empty_question_exits_2(env: Path, capsys, question: str) -> None:
    code, out, err = run(capsys, "ask", question)
    assert (code, out) == (2, "")
    assert err.startswith("error: the question is empty")
    assert not env.exists()  # refused before any index is opened or built


def test_question_over_2000_characters_exits_2(env: Path, capsys) -> None:
    code, out, err = run(capsys, "ask", "x" * 2001)
    assert (code, out) == (2, "")
    assert "error: the question is 2001 characters long; the limit is 2000" in err
    assert run(capsys, "ask", "seminar " + "x" * 1992)[0] == 0  # 2,000 characters exactly is fine


def test_ask_prints_answer_and_sources(env: Path, capsys) -> None:
    code, out, err = run(capsys, "ask", "Where was the Seminar on Migrant Integration held?")
    assert code == 0 and err == ""
    lines = [x for x in out.splitlines() if not x.startswith("(These are the closest passages")]
    assert lines[0] == "On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China. [1]"
    assert lines[2].startswith("[1] Test Newsletter · issue 11 · PROJECT HIGHLIGHTS — Seminar on Migrant Integration")
    assert lines[-1].startswith("confidence ")


def test_unknown_index_lists_existing(env: Path, corpus: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus))[0] == 0
    code, out, err = run(capsys, "ask", "--index", "archive", "Where was the seminar held?")
    assert (code, out) == (2, "")
    assert err.strip() == "error: unknown index 'archive'; existing: default"
    code, out, err = run(capsys, "index", "remove", "--index", "archive", "news-en")
    assert (code, out) == (2, "")
    assert err.strip() == "error: unknown index 'archive'; existing: default"
    assert run(capsys, "index", "list")[1].splitlines()[0].startswith("default: ")
    assert sorted(p.name for p in env.iterdir() if not p.name.startswith(".")) == ["default"]


def test_batch_json_one_contract_object_per_line(env: Path, tmp_path: Path, capsys) -> None:
    batch = tmp_path / "questions.txt"
    batch.write_text("Where was the Seminar on Migrant Integration held?\n\n边境管理系统研讨会在哪里举行？\n", "utf-8")
    code, out, _err = run(capsys, "ask", "--batch", str(batch), "--json")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["question"] for r in rows] == [
        "Where was the Seminar on Migrant Integration held?",
        "边境管理系统研讨会在哪里举行？",
    ]
    assert [r["language"] for r in rows] == ["en", "zh"]
    index = open_index(env / "default")
    for r in rows:
        assert list(r) == ANSWER_KEYS and not r["abstained"] and r["citations"]
        for c in r["citations"]:
            assert set(c) >= CITATION_KEYS
            assert index.documents[c["doc_id"]].text[c["start"] : c["end"]] == c["quote"]
    assert [c["doc_id"] for c in rows[0]["citations"]] == ["news-en"] and "Hangzhou" in rows[0]["answer"]
    assert [c["doc_id"] for c in rows[1]["citations"]] == ["news-zh"] and "北京" in rows[1]["answer"]


def test_batch_reports_a_bad_line_and_goes_on(env: Path, tmp_path: Path, capsys) -> None:
    batch = tmp_path / "questions.txt"
    batch.write_text("y" * 2001 + "\nport visas\n", "utf-8")
    code, out, _err = run(capsys, "ask", "--batch", str(batch), "--json")
    first, second = (json.loads(line) for line in out.splitlines())
    assert code == 1
    assert list(first) == ["question", "error"] and "2001 characters" in first["error"]
    assert list(second) == ANSWER_KEYS and not second["abstained"]


def test_batch_file_missing_exits_2(env: Path, tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, "ask", "--batch", str(tmp_path / "nope.txt"))
    assert (code, out) == (2, "") and err.startswith("error: cannot read")


def test_index_list_and_remove(env: Path, corpus: Path, capsys) -> None:
    assert run(capsys, "index", "list")[1].startswith("no indexes under")
    assert run(capsys, "ingest", str(corpus))[0] == 0
    code, out, _ = run(capsys, "index", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("default: 2 newsletters, ") and "embedders hash + bm25" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == ["news-en", "news-zh"]

    code, out, err = run(capsys, "index", "remove", "news-en")  # not confirmed: nothing removed
    assert (code, out) == (2, "")
    assert err.startswith("error: this would remove 1 newsletter(s) from index 'default': news-en; nothing was")
    assert "--yes" in err
    code, out, _ = run(capsys, "index", "remove", "news-en", "--yes")
    assert code == 0 and out.startswith("removed news-en; index 'default' now has ")
    lines = run(capsys, "index", "list")[1].splitlines()
    assert lines[0].startswith("default: 1 newsletters, ") and [line.split()[0] for line in lines[1:]] == ["news-zh"]

    code, out, err = run(capsys, "index", "remove", "news-en")
    assert (code, out) == (2, "")
    assert err.strip() == "error: not in index 'default': news-en; it holds: news-zh"


def test_ingest_reports_bad_files_and_indexes_the_rest(env: Path, corpus: Path, capsys) -> None:
    from pypdf import PdfWriter

    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 4)
    scan = PdfWriter()
    scan.add_blank_page(612, 792)  # a page without a text layer, as a scanned newsletter
    scan.write(corpus / "scan.pdf")
    code, out, err = run(capsys, "ingest", str(corpus))
    assert code == 3  # some files skipped: documented exit code
    assert out.splitlines()[-1].startswith("index 'default': 2 added, 0 updated, 0 unchanged, 2 skipped; ")
    skipped = sorted(line for line in err.splitlines() if line.startswith("skipped "))
    assert skipped == [
        f"skipped {corpus / 'blob.txt'}: binary or corrupt file: contains NUL bytes and is not UTF-16 text",
        f"skipped {corpus / 'scan.pdf'}: PDF has no text layer (scanned image?) — run OCR first",
    ]
    assert sorted(open_index(env / "default").documents) == ["news-en", "news-zh"]


def test_ingest_of_only_bad_files_exits_3_and_writes_nothing(env: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "blob.txt").write_bytes(b"\x00\xff" * 64)
    code, _out, err = run(capsys, "ingest", str(folder))
    assert code == 3 and f"skipped {folder / 'blob.txt'}: binary or corrupt file" in err
    assert not (env / "default" / "manifest.json").exists()


def test_ingest_of_an_empty_folder_exits_2_and_writes_nothing(env: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "notes.csv").write_text("a,b\n", "utf-8")  # not a newsletter format
    code, _out, err = run(capsys, "ingest", str(folder))
    assert code == 2 and f"error: no newsletter files (.txt .md .html .pdf .docx) in {folder}" in err
    assert not (env / "default").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ingest", "no/such/folder"], "error: no such file or folder: no/such/folder"),
        (["ask"], "error: give a question, or --batch FILE"),
        (["ask", "--k", "0", "seminar"], "error: --k must be at least 1, got 0"),
        (["ask", "--date-from", "2023-13-01", "seminar"], "error: --date-from '2023-13-01' is not a date YYYY-MM-DD"),
        (["ask", "--embedders", "bogus", "seminar"], "error: unknown embedder 'bogus'"),
        (["ingest", "--embedders", "bogus", "{corpus}"], "error: unknown embedder 'bogus'"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(env: Path, corpus: Path, capsys, argv: list[str], message: str) -> None:
    code, out, err = run(capsys, *(a.replace("{corpus}", str(corpus)) for a in argv))
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(message)


def test_unknown_language_filter_is_a_usage_error(env: Path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["ask", "--language", "fr", "seminar"])
    assert info.value.code == 2 and "invalid choice: 'fr'" in capsys.readouterr().err
