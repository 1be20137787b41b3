"""Nothing lost, nothing mixed: document identity, --rebuild, removals, per-file outcomes, bad input (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.cli import main
from rag.embed import HashEmbedder
from rag.ingest import doc_id_for, read
from rag.pipeline import Pipeline, RemovalRefused, decode_question
from rag.store import open_index
from tests.contract import rag_env

GOOD = "SEMINAR NEWS\n\nThe seminar on border management was held in Lisbon in March 2023.\n"


@pytest.fixture
def env(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return rag_env(monkeypatch, tmp_path, corpus, abstain_threshold="0.2")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def held(env: Path, name: str = "default") -> list[str]:
    return sorted(open_index(env / name).documents)


# --------------------------------------------------------------------------- identity


def test_doc_id_is_the_path_relative_to_the_root_without_extension(tmp_path: Path) -> None:
    assert doc_id_for(tmp_path / "2023" / "issue-1.txt", tmp_path) == "2023/issue-1"
    assert doc_id_for(tmp_path / "x.zh.md", tmp_path) == "x.zh"
    assert doc_id_for(tmp_path / "x.txt") == "x"
    sample = Path(__file__).resolve().parent.parent / "data" / "newsletters"
    ids = sorted(read(p, sample).doc_id for p in sample.iterdir() if not p.name.endswith(".json"))
    assert ids == ["mmsp-ii-newsletter-issue-11", "mmsp-ii-newsletter-issue-11.zh"]  # dataset ids unchanged


def test_doc_id_from_front_matter_or_sidecar_wins(tmp_path: Path) -> None:
    md = tmp_path / "a.md"
    md.write_text("---\ndoc_id: issue-7-en\ntitle: T\n---\n\nText.\n", "utf-8")
    txt = tmp_path / "b.txt"
    txt.write_text("Text.\n", "utf-8")
    (tmp_path / "b.meta.json").write_text(json.dumps({"doc_id": "issue-8"}), "utf-8")
    assert read(md, tmp_path).doc_id == "issue-7-en" and read(txt, tmp_path).doc_id == "issue-8"


def test_same_name_in_two_folders_are_two_newsletters(env: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "archive"
    for year in ("2023", "2024"):
        (root / year).mkdir(parents=True)
        (root / year / "issue-1.txt").write_text(GOOD.replace("2023", year), "utf-8")
    code, out, _ = run(capsys, "ingest", str(root))
    assert code == 0 and "2 added" in out
    assert held(env) == ["2023/issue-1", "2024/issue-1"]


def test_a_second_file_with_the_same_id_is_refused_naming_both(env: Path, tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "y2023", tmp_path / "y2024"
    a.mkdir(), b.mkdir()
    (a / "issue-1.txt").write_text(GOOD, "utf-8")
    (b / "issue-1.txt").write_text(GOOD.replace("Lisbon", "Porto"), "utf-8")
    assert run(capsys, "ingest", str(a / "issue-1.txt"))[0] == 0
    code, out, err = run(capsys, "ingest", str(b / "issue-1.txt"))
    assert code == 3 and "0 added, 0 updated, 0 unchanged, 1 skipped" in out
    assert f"skipped {b / 'issue-1.txt'}: doc_id 'issue-1' is already the id of {a / 'issue-1.txt'}" in err
    index = open_index(env / "default")
    assert list(index.documents) == ["issue-1"] and "Lisbon" in index.documents["issue-1"].text  # not overwritten


def test_docx_then_pdf_of_one_name_never_overwrites(env: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "n"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD, "utf-8")
    (folder / "good.md").write_text("# Other\n\nA different newsletter about visas.\n", "utf-8")
    code, _out, err = run(capsys, "ingest", str(folder))
    assert code == 3
    assert f"skipped {folder / 'good.txt'}: doc_id 'good' is also the id of {folder / 'good.md'}" in err
    assert held(env) == ["good"]


# --------------------------------------------------------------------------- rebuild and removals


def test_rebuild_keeps_every_newsletter_the_index_holds(env: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus))[0] == 0
    one = tmp_path / "good-one.txt"
    one.write_text(GOOD, "utf-8")
    code, out, _ = run(capsys, "ingest", str(one), "--rebuild")
    assert code == 0
    assert "1 added, 0 updated, 0 unchanged, 0 skipped, 2 kept and re-indexed" in out
    assert held(env) == ["good-one", "news-en", "news-zh"]


def test_rebuild_repairs_a_mismatched_index_keeping_its_documents(env: Path, corpus: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus), "--no-lexical")[0] == 0
    code, _out, err = run(capsys, "ingest", str(corpus / "news-en.txt"))
    assert code == 2 and "built without the lexical channel" in err and "--rebuild" in err
    code, out, _err = run(capsys, "ingest", str(corpus / "news-en.txt"), "--rebuild")
    assert code == 0 and "1 kept and re-indexed" in out and held(env) == ["news-en", "news-zh"]
    assert open_index(env / "default").manifest.lexical


def test_prune_asks_for_yes_and_removes_nothing_without_it(env: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus))[0] == 0
    only = tmp_path / "only"
    only.mkdir()
    (only / "good-one.txt").write_text(GOOD, "utf-8")
    code, out, err = run(capsys, "ingest", str(only), "--prune")
    assert (code, out) == (2, "")
    assert "this would remove 2 newsletter(s) from index 'default': news-en, news-zh; nothing was changed" in err
    assert held(env) == ["news-en", "news-zh"]
    code, out, _ = run(capsys, "ingest", str(only), "--prune", "--yes")
    assert code == 0 and "2 removed" in out and held(env) == ["good-one"]


def test_removal_refused_without_confirmation_in_the_pipeline(pipeline, settings) -> None:
    pipeline.ingest([settings.corpus])
    with pytest.raises(RemovalRefused, match="news-en"):
        pipeline.remove(["news-en"], confirm=lambda ids: False)
    assert sorted(pipeline.index().documents) == ["news-en", "news-zh"]


# --------------------------------------------------------------------------- per-file outcomes


def test_mixed_folder_indexes_the_good_files_with_a_status_each(env: Path, corpus: Path, capsys) -> None:
    (corpus / "fr.md").write_text("---\nlanguage: fr\n---\n\nLe séminaire a eu lieu à Lyon.\n", "utf-8")
    (corpus / "ja.md").write_text("---\nlanguage: ja\n---\n\nセミナーは東京で開催されました。\n", "utf-8")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    code, out, _err = run(capsys, "ingest", str(corpus), "--json")
    assert code == 3
    report = json.loads(out)
    status = {Path(f["path"]).name: (f["status"], f["reason"]) for f in report["files"]}
    assert {k: v[0] for k, v in status.items()} == {
        "broken.pdf": "skipped",
        "fr.md": "skipped",
        "ja.md": "skipped",
        "news-en.txt": "added",
        "news-zh.md": "added",
    }
    assert status["fr.md"][1] == "language 'fr' is not supported (newsletters in en, zh or zh-hant)"
    assert status["broken.pdf"][1].startswith("unreadable PDF")
    assert report["counts"] == {"added": 2, "updated": 0, "unchanged": 0, "skipped": 3} and report["exit_code"] == 3
    assert held(env) == ["news-en", "news-zh"]
    code, out, _ = run(capsys, "ingest", str(corpus / "news-en.txt"), "--json")
    assert code == 0 and [f["status"] for f in json.loads(out)["files"]] == ["unchanged"]


def test_a_document_over_the_size_limit_is_refused_clearly(env: Path, corpus: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("RAG_MAX_DOCUMENT_MB", "1")
    (corpus / "huge.txt").write_text("word " * 250_000, "utf-8")  # 1.2 MB
    code, _out, err = run(capsys, "ingest", str(corpus))
    assert code == 3
    assert f"skipped {corpus / 'huge.txt'}: too large: 1.2 MB; the limit is 1 MB per document" in err


def test_unchanged_ingest_writes_no_new_version(pipeline, settings) -> None:
    pipeline.ingest([settings.corpus])
    before = json.loads((settings.index_dir / "manifest.json").read_text())["version"]
    report = pipeline.ingest([settings.corpus])
    assert not report.written and sorted(report.unchanged) == ["news-en", "news-zh"]
    assert json.loads((settings.index_dir / "manifest.json").read_text())["version"] == before


# --------------------------------------------------------------------------- bad input


def test_decode_question_replaces_what_cannot_be_text() -> None:
    assert decode_question("ok\udcff\udcfe?") == "ok\ufffd\ufffd?"  # argv bytes that were not UTF-8
    assert decode_question("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert decode_question("tab\tbell\x07") == "tab\tbell "
    assert decode_question("x\udcff\ud800") == "x\ufffd\ufffd"  # both kinds together


def test_invalid_utf8_in_ask_gives_an_answer_not_a_traceback(env: Path, capsys) -> None:
    question = b"Where was the seminar \xff\xfe held?".decode("utf-8", "surrogateescape")  # as Python reads argv
    code, out, err = run(capsys, "ask", question, "--json")
    assert code == 0 and err == ""
    assert json.loads(out)["question"] == "Where was the seminar \ufffd\ufffd held?"


def test_batch_reports_a_bad_line_and_answers_the_others(env: Path, tmp_path: Path, capsys) -> None:
    batch = tmp_path / "q.txt"
    lines = [b"port visas", b"bad \xff\xfe bytes", "lone \ud800".encode("utf-8", "surrogatepass"), b"", b"x" * 2001]
    batch.write_bytes(b"\n".join([*lines, "边境管理系统研讨会在哪里举行？".encode()]) + b"\n")
    code, out, err = run(capsys, "ask", "--batch", str(batch), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and len(rows) == 5  # the empty line is skipped, every other line has a row
    assert [("error" in r) for r in rows] == [False, False, False, True, False]
    assert "warning: line 2: invalid UTF-8" in err and "warning: line 3: invalid UTF-8" in err


def test_stdin_batch_with_invalid_bytes(env: Path, capsys, monkeypatch) -> None:
    import io
    import sys

    fake = io.TextIOWrapper(io.BytesIO(b"port visas\n\xc3\x28 seminar\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    code, out, _ = run(capsys, "ask", "--batch", "-", "--json")
    assert code == 0 and len(out.splitlines()) == 2


def test_index_list_reports_a_damaged_index_and_lists_the_others(env: Path, corpus: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus))[0] == 0
    assert run(capsys, "ingest", str(corpus), "--index", "second")[0] == 0
    top = json.loads((env / "default" / "manifest.json").read_text())
    (env / "default" / "segments" / top["segments"][0]["name"] / "table.npz").write_text("{not npz\n", "utf-8")
    code, out, _ = run(capsys, "index", "list")
    assert code == 1
    segment = top["segments"][0]["name"]
    assert out.splitlines()[0].startswith(
        f"default: DAMAGED (index 'default' is damaged: segments/{segment}: table.npz: "
    )
    assert any(line.startswith("second: 2 newsletters") for line in out.splitlines())
    (env / "second" / "manifest.json").write_text("{", "utf-8")
    code, out, _ = run(capsys, "index", "list")
    assert "second: DAMAGED (index 'second' is damaged: manifest.json" in out


def test_pipeline_with_a_fake_embedder_counts(settings) -> None:
    # the hash embedder is the fake: instant and exact, so outcome tests need no model
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    report = pipe.ingest([settings.corpus])
    assert [f.status for f in report.files] == ["added", "added"] and report.written


def test_k_over_50_and_a_huge_bad_date_are_refused_briefly(env: Path, capsys) -> None:
    code, out, err = run(capsys, "ask", "--k", "51", "seminar")
    assert (code, out) == (2, "") and err.strip() == "error: --k must be at most 50, got 51"
    code, out, err = run(capsys, "ask", "--date-from", "9" * 100_000, "seminar")
    assert (code, out) == (2, "") and len(err) < 200 and "is not a date YYYY-MM-DD" in err


def test_prune_adopts_files_that_moved(env: Path, corpus: Path, tmp_path: Path, capsys) -> None:
    assert run(capsys, "ingest", str(corpus))[0] == 0
    moved = tmp_path / "moved"
    corpus.rename(moved)
    code, _out, err = run(capsys, "ingest", str(moved))
    assert code == 3 and "is already the id of" in err  # without --prune: refused, nothing overwritten
    code, out, _ = run(capsys, "ingest", str(moved), "--prune", "--json")
    assert code == 0 and [f["status"] for f in json.loads(out)["files"]] == ["updated", "updated"]
    assert json.loads(out)["embedded_chunks"] == 0  # same text: vectors kept, only the path changes
    assert run(capsys, "ingest", str(moved))[0] == 0  # and now it is the files' home
