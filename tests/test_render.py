"""The UI's HTML: hostile text escaped, exact highlights, linked markers, UI language, abstentions."""

from __future__ import annotations

import itertools
import re

import pytest

from rag import render
from rag.types import Answer, Citation, Document, Meta

HOSTILE = "<script>alert(1)</script> and <img src=x onerror=alert(1)> & \"quotes\" 'single'"
TEXT = "INTRO\n\nFirst sentence here. The seminar was held in Hangzhou, China. Over 30 attended.\n\nEnd."


def _doc(text: str = TEXT, title: str = "Test <b>Newsletter</b>") -> Document:
    return Document(doc_id="doc-1", text=text, meta=Meta(title=title, issue="11", period="2023"), language="en")


def _cite(doc: Document, quote: str, passage_from: int, passage_to: int, n: int = 1, **kw: object) -> Citation:
    start = doc.text.index(quote)
    fields = dict(
        n=n,
        doc_id=doc.doc_id,
        title=doc.meta.title,
        issue="11",
        section="HIGHLIGHTS",
        quote=quote,
        start=start,
        end=start + len(quote),
        passage=doc.text[passage_from:passage_to],
        score=0.8312,
        language="en",
        passage_start=passage_from,
    )
    fields.update(kw)
    return Citation(**fields)  # type: ignore[arg-type]


def _visible_text(markup: str) -> str:
    """What a browser would show: tags dropped, entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", markup))


def test_escape_makes_hostile_text_inert() -> None:
    out = render.escape(HOSTILE)
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
    assert out.startswith("&lt;script&gt;alert(1)&lt;/script&gt;")
    assert _visible_text(out) == HOSTILE


def test_no_raw_markup_from_documents_anywhere() -> None:
    doc = _doc(f"HOSTILE\n\nPayload: {HOSTILE} end.\n", title=HOSTILE)
    c = _cite(doc, f"Payload: {HOSTILE} end.", 0, len(doc.text))
    c = Citation(**{**{f: getattr(c, f) for f in c.__slots__}, "section": HOSTILE, "also_in": (HOSTILE,)})
    answer = Answer(question=HOSTILE, language="en", abstained=False, answer=f"{c.quote} [1]", citations=(c,))
    pages = [
        render.conversation_html([{"question": HOSTILE, "answer": answer}], "en", 0),
        render.sources_html(answer, "en", 0, {doc.doc_id: doc}),
        render.document_html(doc, c, "en"),
        render.documents_table({doc.doc_id: doc}, "en"),
        render.notice_html(HOSTILE, "warn"),
    ]
    for markup in pages:
        assert "<script" not in markup and "<img" not in markup  # no tag from the document survives
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup
        assert "<script>alert(1)</script>" in _visible_text(markup)


def test_quote_highlighted_at_exact_offsets_inside_passage() -> None:
    doc = _doc()
    quote = "The seminar was held in Hangzhou, China."
    p_from = doc.text.index("First")
    c = _cite(doc, quote, p_from, doc.text.index("\n\nEnd"))
    card = render.source_card(c, "en", 0, doc)
    marked = re.search(r"<mark>(.*?)</mark>", card, re.S)
    assert marked and marked.group(1) == quote
    block = re.search(r"<blockquote[^>]*>(.*?)</blockquote>", card, re.S).group(1)  # type: ignore[union-attr]
    before = _visible_text(block.split("<mark>")[0])
    assert before == doc.text[p_from : c.start]  # the mark starts exactly at start - passage_start


def test_highlight_uses_offsets_not_search_when_quote_repeats() -> None:
    text = "Repeat me. Middle. Repeat me. Tail."
    second = text.rindex("Repeat me.")
    c = Citation(
        n=1,
        doc_id="doc-1",
        title="t",
        issue="",
        section="",
        quote="Repeat me.",
        start=second,
        end=second + 10,
        passage=text,
        score=0.5,
        passage_start=0,
    )
    a, b = render.quote_span(c, text, 0)
    assert (a, b) == (second, second + 10)
    html_ = render.highlight(text, a, b)
    assert html_ == "Repeat me. Middle. <mark>Repeat me.</mark> Tail."


def test_quote_straddling_the_passage_end_is_shown_whole() -> None:
    doc = _doc()
    quote = "The seminar was held in Hangzhou, China."
    start = doc.text.index(quote)
    c = _cite(doc, quote, doc.text.index("First"), start + 10)  # passage cut inside the quote
    passage, p_start = render.card_passage(c, doc)
    assert quote in passage and p_start == doc.text.index("First")
    card = render.source_card(c, "en", 0, doc)
    assert re.search(r"<mark>(.*?)</mark>", card).group(1) == quote  # type: ignore[union-attr]


def test_document_view_marks_passage_and_quote_with_ids() -> None:
    doc = _doc()
    quote = "The seminar was held in Hangzhou, China."
    c = _cite(doc, quote, doc.text.index("First"), doc.text.index("\n\nEnd"))
    out = render.document_html(doc, c, "en")
    assert out.count('id="doc-passage"') == 1 and '<mark id="doc-quote">' + quote + "</mark>" in out
    body = re.search(r'<div class="doc-text"[^>]*>(.*)</div></div>$', out, re.S).group(1)  # type: ignore[union-attr]
    assert _visible_text(body) == doc.text  # the whole newsletter, nothing lost or added


def test_markers_link_to_cards_only_for_cited_numbers() -> None:
    out = render.link_markers("Held in Hangzhou. [1] See footnote [7]. Also [2]", [1, 2], turn=3)
    assert out.count('class="cite-marker"') == 2
    assert '<a class="cite-marker" href="#cite-1" data-n="1" data-turn="3"' in out
    assert 'href="#cite-2"' in out and "[7]" in out and 'href="#cite-7"' not in out


def test_card_shows_metadata_and_other_editions() -> None:
    doc = _doc()
    c = _cite(doc, "Over 30 attended.", 0, len(doc.text), n=2, also_in=("doc-zh",))
    card = render.source_card(c, "en", 0, doc, {"doc-zh": "测试通讯 (Chinese)"})
    for piece in (
        'id="cite-2"',
        "Test &lt;b&gt;Newsletter&lt;/b&gt;",
        "<dd>11</dd>",
        "<dd>HIGHLIGHTS</dd>",
        "<dd>0.83</dd>",
        "<dd>English</dd>",
        "Also in",
        "测试通讯 (Chinese)",
        'class="open-doc" data-n="2"',
    ):
        assert piece in card
    zh_card = render.source_card(c, "zh", 0, doc)
    assert "期号" in zh_card and "相关度" in zh_card and "打开简报全文" in zh_card


@pytest.mark.parametrize(
    ("question", "current", "locked", "expected"),
    [
        ("Where was the seminar held?", "zh", False, "en"),
        ("移民融合研讨会在哪里举行？", "en", False, "zh"),
        ("移民融合研討會在哪裡舉行？", "en", False, "zh"),  # Traditional → the Simplified-Chinese UI
        ("MMSP 项目是什么？", "en", False, "zh"),
        ("移民融合研讨会在哪里举行？", "en", True, "en"),  # the user picked English: stay
        ("Where?", "zh", True, "zh"),
        ("   ", "zh", False, "zh"),
    ],
)
def test_ui_language_follows_question_unless_picked(question: str, current: str, locked: bool, expected: str) -> None:
    assert render.ui_language(question, current, locked) == expected


def test_strings_exist_in_both_languages() -> None:
    assert set(render.STRINGS["en"]) == set(render.STRINGS["zh"])
    assert render.t("zh", "send") == "提问" and render.t("en", "send") == "Ask"
    assert render.t("zh-hant", "sources") == "来源"
    assert render.t("en", "too_big", name="a.pdf", size=25.04, mb=20) == "a.pdf is 25.0 MB; the limit is 20 MB."
    assert render.UI_LANGUAGES == {"English": "en", "简体中文": "zh"}


def test_abstention_is_a_plain_answer_without_sources() -> None:
    ans = Answer(question="zebra?", language="en", abstained=True, answer="The newsletters don't say.")
    chat = render.conversation_html([{"question": "zebra?", "answer": ans}], "en", 0)
    assert "qa-abstain" in chat and "The newsletters don&#x27;t say." in chat
    assert "error" not in chat.lower() and "warn" not in chat
    src = render.sources_html(ans, "en", 0)
    assert "source-card" not in src and "nothing in the indexed newsletters answers" in src
    assert "没有来源" in render.sources_html(ans, "zh", 0)


def test_stream_prefixes_grow_and_never_split_a_marker() -> None:
    text = "On 9-10 May 2023 a seminar was held in Hangzhou. [1] Over 30 people attended. [2] [12]"
    steps = render.stream_prefixes(text, max_steps=12)
    assert steps[-1] == text and len(steps) <= 12
    assert all(a != b and b.startswith(a) for a, b in itertools.pairwise(steps))
    for s in steps:
        assert not re.search(r"\[\d*$", s)  # never ends inside "[n"
    zh = "2023年5月9日至10日，移民融合研讨会在中国杭州举行。[1]"
    zsteps = render.stream_prefixes(zh, max_steps=8)
    assert zsteps[-1] == zh and len(zsteps) == 8 and all(not re.search(r"\[\d*$", s) for s in zsteps)
    assert render.stream_prefixes("") == [""]


def test_partial_answer_shows_streaming_caret_then_full_answer() -> None:
    ans = Answer(
        question="q",
        language="en",
        abstained=False,
        answer="Hangzhou. [1]",
        citations=(Citation(1, "d", "t", "", "", "Hangzhou.", 0, 9, "Hangzhou.", 0.9),),
    )
    partial = render.conversation_html([{"question": "q", "answer": ans}], "en", 0, partial="Hangzhou. ")
    assert "streaming" in partial and "cite-marker" not in partial
    full = render.conversation_html([{"question": "q", "answer": ans}], "en", 0)
    assert "streaming" not in full and 'href="#cite-1"' in full
    pending = render.conversation_html([{"question": "q", "answer": None}], "zh")
    assert "pending" in pending and "正在检索" in pending
