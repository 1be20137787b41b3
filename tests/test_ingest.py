"""Tests for rag.ingest: encodings, metadata, each format, batches; fixtures are built in tmp_path."""

from __future__ import annotations

import codecs
import json
import os
import pickle
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.ingest import SUPPORTED, IngestError, decode, discover, read, read_many
from rag.types import Meta

SAMPLE = Path(__file__).parent.parent / "data/newsletters/mmsp-ii-newsletter-issue-11.txt"
ZH_HANS = "国际移民组织在杭州举办了移民融合研讨会。"
ZH_HANT = "國際移民組織在杭州舉辦了移民融合研討會。"


def _write(path: Path, data: bytes | str) -> Path:
    """Write bytes (or UTF-8 text) to `path` and return it."""
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _pdf(streams: list[bytes | None]) -> bytes:
    """A minimal valid PDF, one page per content stream (None = a page without one), Helvetica as /F1."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for stream in streams:
        page_no = len(objects) + 1
        kids.append(f"{page_no} 0 R".encode())
        page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >>"
        if stream is None:
            objects.append(page + b" >>")
        else:
            objects.append(page + f" /Contents {page_no + 1} 0 R >>".encode())
            objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (n, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _text_stream(*lines: str) -> bytes:
    """A content stream drawing each line in 12pt Helvetica, one below the other."""
    ops = [b"BT /F1 12 Tf 14 TL 72 720 Td"]
    ops += [b"(%s) Tj T*" % line.encode("latin-1") for line in lines]
    return b" ".join([*ops, b"ET"])


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Hello 世界\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + "Hello 世界\n".encode(), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "Hello 世界\n".encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + "Hello 世界\n".encode("utf-16-be"), "utf-16-be"),
        ("Hello 世界\n".encode("utf-16-le"), "utf-16-le"),
        ("Hello 世界\n".encode("utf-16-be"), "utf-16-be"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le-nobom", "utf16be-nobom"],
)
def test_unicode_encodings_decode_exactly(tmp_path: Path, data: bytes, encoding: str) -> None:
    doc = read(_write(tmp_path / "note.txt", data))
    assert (doc.text, doc.encoding) == ("Hello 世界\n", encoding)


def test_gb18030_simplified_chinese(tmp_path: Path) -> None:
    text = (ZH_HANS + "\n") * 3
    doc = read(_write(tmp_path / "zh.txt", text.encode("gb18030")))
    assert (doc.text, doc.encoding) == (text, "gb18030")


def test_big5_traditional_chinese(tmp_path: Path) -> None:
    text = (ZH_HANT + "\n") * 3
    doc = read(_write(tmp_path / "zh-hant.txt", text.encode("big5")))
    assert (doc.text, doc.encoding) == (text, "big5")


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (ZH_HANS, "gb18030"),
        (ZH_HANT, "big5"),
        (ZH_HANT, "gb18030"),  # GB18030 covers Traditional characters too
        ("Seminar held in 杭州 on 9 May, attended by 30 people.", "gb18030"),
        ("Seminar held in 杭州 on 9 May, attended by 30 people.", "big5"),
        ("Grüße aus München, “quoted” – naïve café.", "cp1252"),
    ],
)
def test_legacy_encodings_decode_exactly(text: str, encoding: str) -> None:
    assert decode(text.encode(encoding)) == (text, encoding)


def test_crlf_is_normalised(tmp_path: Path) -> None:
    assert read(_write(tmp_path / "a.txt", b"one\r\ntwo\rthree\n")).text == "one\ntwo\nthree\n"


def test_binary_txt_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "blob.txt", bytes([0x89, 0x50, 0x4E, 0x47, 0, 0, 0, 0x0D, 0xFF, 0x00, 0x10, 0x00, 0x7F]))
    with pytest.raises(IngestError, match="binary or corrupt") as info:
        read(path)
    assert info.value.path == path


def test_random_bytes_txt_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="binary or corrupt"):
        read(_write(tmp_path / "noise.txt", os.urandom(4096)))


def test_utf8_with_a_broken_byte_is_corrupt_not_mojibake(tmp_path: Path) -> None:
    data = (ZH_HANS * 3).encode() + b"\xff" + "完".encode()
    with pytest.raises(IngestError, match="invalid UTF-8 at byte 180"):
        read(_write(tmp_path / "broken.txt", data))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Co")), min_size=1))
def test_utf8_and_utf16_bom_round_trip(text: str) -> None:
    assert decode(text.encode("utf-8")) == (text, "utf-8")
    assert decode(codecs.BOM_UTF16_LE + text.encode("utf-16-le")) == (text, "utf-16-le")


# --------------------------------------------------------------------------- metadata


def test_front_matter_parsed_and_removed(tmp_path: Path) -> None:
    md = (
        '---\ntitle: "MMSP II Newsletter"\nissue: 11\n'
        "period: 'May 2022 – June 2023'\nlanguage: en\nauthor: x\n---\n\n# FOREWORD\nBody.\n"
    )
    doc = read(_write(tmp_path / "issue-11.md", md))
    assert doc.text == "# FOREWORD\n\nBody."  # rendered by rag.markup: blocks apart, heading kept for clean
    assert doc.meta == Meta(title="MMSP II Newsletter", issue="11", period="May 2022 – June 2023", language="en")
    assert (doc.doc_id, doc.fmt) == ("issue-11", "md")


def test_sidecar_wins_over_front_matter(tmp_path: Path) -> None:
    md = "---\ntitle: From front matter\nissue: 10\nlanguage: en\n---\n国际移民\n"
    path = _write(tmp_path / "mmsp-ii-newsletter-issue-11.zh.md", md)
    sidecar = {
        "title": "第11期",
        "issue": 11,
        "date_start": "2022-05-01",
        "edition_of": "mmsp-ii-11",
        "unknown": [1],
    }
    _write(tmp_path / "mmsp-ii-newsletter-issue-11.zh.meta.json", json.dumps(sidecar, ensure_ascii=False))
    doc = read(path)
    assert doc.doc_id == "mmsp-ii-newsletter-issue-11.zh"
    assert doc.meta == Meta(title="第11期", issue="11", date_start="2022-05-01", language="en", edition_of="mmsp-ii-11")


def test_bad_sidecar_raises(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.txt", "text")
    _write(tmp_path / "a.meta.json", "{not json")
    with pytest.raises(IngestError, match=r"bad sidecar a\.meta\.json"):
        read(path)


def test_title_falls_back_to_first_line_then_stem(tmp_path: Path) -> None:
    long_line = "x" * 200
    assert read(_write(tmp_path / "a.txt", f"\n\n  {long_line}  \nmore")).meta.title == "x" * 120
    assert read(_write(tmp_path / "b.txt", "#\nbody")).meta.title == "b"
    assert (
        read(_write(tmp_path / "c.md", "#\nbody")).meta.title == "body"
    )  # an empty Markdown heading renders to nothing


# --------------------------------------------------------------------------- html

HTML = """<!DOCTYPE html><html><head><title>Ignored</title><style>p{color:red}</style></head>
<body><nav>Home | About</nav>
<h1>MMSP II
   EVENTS</h1>
<p>Fish &amp; chips &lt;b&gt;bold&lt;/b&gt; <em>inline</em>text</p>
<script>alert(1)</script>
<h3>Study visit</h3><div>Line one<br>Line two</div>
<ul><li>First</li><li>Second</li></ul>
<table><tr><td>A</td><td>B</td></tr></table>
<p>&lt;img src=x onerror=alert(1)&gt;</p><!-- a comment -->
</body></html>"""


def test_html_text_headings_entities_and_no_markup(tmp_path: Path) -> None:
    doc = read(_write(tmp_path / "page.htm", HTML))
    assert doc.text == (
        "## MMSP II EVENTS\n\nFish & chips <b>bold</b> inlinetext\n\n### Study visit\n\nLine one\n\nLine two"
        "\n\nFirst\n\nSecond\n\nA B\n\n<img src=x onerror=alert(1)>"
    )
    assert (doc.fmt, doc.meta.title) == ("html", "MMSP II EVENTS")
    assert "alert(1)</" not in doc.text and "Ignored" not in doc.text and "Home" not in doc.text


def test_html_deep_nesting_does_not_recurse(tmp_path: Path) -> None:
    page = "<div>" * 3000 + "deep" + "</div>" * 3000
    assert read(_write(tmp_path / "deep.html", page)).text == "deep"


def test_html_declared_gb2312_charset(tmp_path: Path) -> None:
    page = f'<html><head><meta charset="gb2312"></head><body><h2>{ZH_HANS}</h2></body></html>'
    doc = read(_write(tmp_path / "zh.html", page.encode("gb2312")))
    assert (doc.text, doc.encoding) == (f"## {ZH_HANS}", "gb18030")


# --------------------------------------------------------------------------- docx / pdf


def test_docx_headings_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("MMSP II EVENTS", level=1)
    document.add_paragraph("First paragraph.")
    document.add_paragraph("")
    document.add_heading("Study visit", level=3)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Cell A", "Cell B"
    document.add_paragraph(ZH_HANS)
    document.save(str(tmp_path / "issue.docx"))
    doc = read(tmp_path / "issue.docx")
    assert doc.text == f"## MMSP II EVENTS\n\nFirst paragraph.\n\n### Study visit\n\nCell A\n\nCell B\n\n{ZH_HANS}"
    assert (doc.fmt, doc.meta.title) == ("docx", "MMSP II EVENTS")


def test_corrupt_docx_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unreadable DOCX"):
        read(_write(tmp_path / "bad.docx", b"PK\x03\x04 not really a zip"))


def test_pdf_with_text_layer(tmp_path: Path) -> None:
    pdf = _pdf([_text_stream("MMSP II Newsletter", "Issue 11"), None, _text_stream("Second page")])
    doc = read(_write(tmp_path / "issue.pdf", pdf))
    assert doc.text == "MMSP II Newsletter\nIssue 11\n\nSecond page"
    from pypdf import PdfReader

    assert len(PdfReader(tmp_path / "issue.pdf", strict=True).pages) == 3  # the hand-made xref is valid
    assert (doc.doc_id, doc.fmt, doc.meta.title) == ("issue", "pdf", "MMSP II Newsletter")


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no text layer"):
        read(_write(tmp_path / "scan.pdf", _pdf([None])))


def test_random_bytes_pdf_raises(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unreadable PDF"):
        read(_write(tmp_path / "noise.pdf", os.urandom(2048)))


def test_encrypted_pdf_raises(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    plain = _write(tmp_path / "plain.pdf", _pdf([_text_stream("secret text")]))
    writer = PdfWriter()
    writer.append(PdfReader(plain))
    writer.encrypt(user_password="pw", algorithm="RC4-128")
    writer.write(tmp_path / "locked.pdf")
    with pytest.raises(IngestError, match="encrypted"):
        read(tmp_path / "locked.pdf")


# --------------------------------------------------------------------------- errors, batches, discovery


def test_unsupported_missing_and_empty(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match=r"unsupported file type \.xyz; supported: \.txt, \.md"):
        read(_write(tmp_path / "a.xyz", "text"))
    with pytest.raises(IngestError, match="file not found"):
        read(tmp_path / "missing.txt")
    with pytest.raises(IngestError, match="empty document"):
        read(_write(tmp_path / "blank.md", "---\ntitle: t\n---\n \n\n"))


def test_ingest_error_str_and_pickle(tmp_path: Path) -> None:
    err = IngestError(tmp_path / "a.pdf", "empty document")
    again = pickle.loads(pickle.dumps(err))
    assert (str(again), again.path, again.reason) == (
        f"{tmp_path / 'a.pdf'}: empty document",
        err.path,
        err.reason,
    )


def test_read_many_skips_bad_files(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.txt", "Hello")
    bad = _write(tmp_path / "bad.pdf", b"\x00\x01garbage")
    docs, errors = read_many([bad, good])
    assert [d.doc_id for d in docs] == ["good"]
    assert [e.path for e in errors] == [bad]


def test_read_many_reports_duplicate_doc_ids(tmp_path: Path) -> None:
    first, second = _write(tmp_path / "x.txt", "one"), _write(tmp_path / "x.md", "two")
    docs, errors = read_many([first, second])
    assert [d.path for d in docs] == [str(first)]
    assert [(e.path, f"doc_id 'x' is also the id of {first}" in e.reason) for e in errors] == [(second, True)]


def test_discover_expands_folders(tmp_path: Path) -> None:
    sub = tmp_path / "zh"
    hidden = tmp_path / ".git"
    sub.mkdir()
    hidden.mkdir()
    for name in ("b.txt", "a.md", "a.meta.json", ".hidden.txt", "notes.csv", "~$draft.docx", "zh/c.HTML"):
        _write(tmp_path / name, "x")
    _write(hidden / "d.txt", "x")
    explicit = tmp_path / "other.xyz"
    assert discover([tmp_path, explicit, tmp_path / "b.txt"]) == [
        tmp_path / "a.md",
        tmp_path / "b.txt",
        sub / "c.HTML",
        explicit,
    ]
    assert ".htm" in SUPPORTED


def test_real_sample_newsletter() -> None:
    doc = read(SAMPLE)
    assert (doc.doc_id, doc.fmt, doc.encoding) == ("mmsp-ii-newsletter-issue-11", "txt", "utf-8")
    assert doc.text.lstrip().startswith("FOREWORD")
    assert doc.meta.title
