"""rag.markup: Markdown and HTML rendered to plain text before cleaning, links kept as metadata (exact cases)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from rag.clean import clean
from rag.ingest import read, split_front_matter
from rag.markup import html, markdown
from rag.store import _doc_from_json, _doc_to_json

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_ZH = ROOT / "data" / "newsletters" / "mmsp-ii-newsletter-issue-11.zh.md"


def test_table_row_written_as_a_bullet() -> None:
    r = markdown("* [**EuroRust**](https://eurorust.eu) | 2026-04-27 | Barcelona, Spain |")
    assert r.text == "EuroRust — 2026-04-27 — Barcelona, Spain"
    assert r.links == (("EuroRust", "https://eurorust.eu"),)
    assert not any(mark in r.text for mark in ("*", "|", "(https", "eurorust.eu"))


def test_gfm_table_rows_become_blocks_without_pipes() -> None:
    md = "| Event | Date |\n|---|---|\n| [RustConf](https://rustconf.com) | 2026-09-08 |\n| *Meetup* |  |\n"
    r = markdown(md)
    assert r.text == "Event — Date\n\nRustConf — 2026-09-08\n\nMeetup"
    assert r.links == (("RustConf", "https://rustconf.com"),)


def test_html_comments_vanish_in_markdown_and_html() -> None:
    assert markdown("<!-- draft: remove before sending -->\n\nHello <!-- inline --> world.").text == "Hello  world."
    assert markdown("Before\n\n<!--\nmany\nlines\n-->\n\nAfter").text == "Before\n\nAfter"
    assert html("<p>Hello <!-- hidden --> world</p><!-- end -->").text == "Hello  world"  # clean collapses


def test_emphasis_code_headings_and_lists() -> None:
    md = (
        "# Banner\n\n## **This** Week\n\nSome _emphasis_, **strong**, ~~gone~~ and `code`.\n\n"
        '- first\n- second with [a link](https://x.org/a "title")\n\n1. one\n2. two\n\n> quoted\n\n---\n\n'
        "![logo](https://x.org/logo.png)\n"
    )
    r = markdown(md)
    assert r.text == (
        "# Banner\n\n## This Week\n\nSome emphasis, strong, gone and code.\n\nfirst\n\nsecond with a link"
        "\n\n1. one\n\n2. two\n\nquoted"
    )
    assert r.links == (("a link", "https://x.org/a"),)


def test_code_fences_go_and_code_lines_are_not_headings(tmp_path: Path) -> None:
    path = tmp_path / "n.md"
    path.write_text("### Release\n\n```sh\n# install it\ncargo add x\n```\n\n***bold italic***\n", "utf-8")
    raw = read(path)
    assert raw.text == "### Release\n\n    # install it\ncargo add x\n\nbold italic"
    doc = clean(raw)
    assert doc.text == "Release\n\n# install it cargo add x\n\nbold italic"
    assert [(s.name, s.heading) for s in doc.sections] == [("", "Release")]  # "# install it" is no banner


def test_links_flow_from_ingest_to_the_stored_document(tmp_path: Path) -> None:
    path = tmp_path / "issue-1.md"
    path.write_text("---\ntitle: Issue 1\n---\n\nRead [the notes](https://n.org/1) and <https://n.org/2>.\n", "utf-8")
    doc = clean(read(path))
    assert doc.text == "Read the notes and https://n.org/2."
    assert doc.links == (("the notes", "https://n.org/1"), ("https://n.org/2", "https://n.org/2"))
    assert _doc_from_json(_doc_to_json(doc)) == doc
    legacy = _doc_to_json(doc)
    del legacy["links"]  # an index written before links were kept still loads
    assert _doc_from_json(legacy).links == ()


def test_html_links_are_metadata_and_fragments_are_not() -> None:
    r = html('<p>See <a href="https://eu.eu/x">the <b>report</b></a> and <a href="#top">top</a>.</p>')
    assert r.text == "See the report and top."
    assert r.links == (("the report", "https://eu.eu/x"),)


def test_html_text_that_looks_like_a_heading_is_not_one() -> None:
    assert html("<h2>Title</h2><p># not a heading</p><pre>---</pre>").text == (
        "## Title\n\n    # not a heading\n\n    ---"
    )


def test_sample_chinese_edition_keeps_every_paragraph() -> None:
    _front, body = split_front_matter(SAMPLE_ZH.read_text("utf-8"))
    text = clean(read(SAMPLE_ZH)).text
    for block in body.split("\n\n"):
        if not block.startswith(("# ", "## ")):  # "#"/"##" banners are section names, not text
            assert block.strip().lstrip("#").strip() in text, block


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z](?: ?[A-Za-z]){1,10}", fullmatch=True),  # Markdown collapses runs of spaces
            st.from_regex(r"https://[a-z]{1,8}\.org/[a-z0-9]{0,6}", fullmatch=True),
        ),
        max_size=5,
    )
)
def test_link_targets_never_reach_the_text(links: list[tuple[str, str]]) -> None:
    r = markdown("\n".join(f"- [{label}]({url})" for label, url in links))
    assert r.links == tuple(links)
    assert all(url not in r.text and label in r.text for label, url in links)
