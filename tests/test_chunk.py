import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunk import ChunkSettings, chunk, split_sentences, units
from rag.types import Document, Meta, Section


def doc(text: str, sections: tuple[Section, ...] = ()) -> Document:
    return Document(doc_id="d", text=text, meta=Meta(title="t"), language="en", sections=sections)


def test_units_is_fair_to_both_languages() -> None:
    assert units("The seminar was held in Hangzhou.") == 6
    assert units("研讨会在杭州举行。") == 5  # 8 Han characters × 0.6
    assert units("MMSP 项目") == 1 + 1


def test_sentences_know_both_scripts_and_abbreviations() -> None:
    text = "Mr. Mao Xu spoke. H.E. Mr. Xu met him! 会议在北京举行。会议很成功？\n\n• Resumed visas."
    got = [text[s:e] for s, e in split_sentences(text)]
    assert got == ["Mr. Mao Xu spoke.", "H.E. Mr. Xu met him!", "会议在北京举行。", "会议很成功？", "• Resumed visas."]


def test_chunks_have_exact_offsets_overlap_and_stay_in_sections() -> None:
    a = " ".join(f"Sentence number {i} is about migration." for i in range(40))
    b = "".join(f"第{i}句话是关于边境管理的。" for i in range(60))
    text = a + "\n\n" + b
    sections = (Section(0, len(a), "EVENTS"), Section(len(a) + 2, len(text), "政策角"))
    chunks = chunk(doc(text, sections), ChunkSettings(size=40, overlap=10))
    assert len(chunks) > 4
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.section == ("EVENTS" if c.end <= len(a) else "政策角")
        assert units(c.text) <= 40
        assert all(c.start <= s < e <= c.end for s, e in c.sentences)
    # consecutive chunks of one section overlap
    same = [(x, y) for x, y in itertools.pairwise(chunks) if x.section == y.section]
    assert any(y.start < x.end for x, y in same)


mixed = st.lists(
    st.sampled_from(
        ["Hello world. ", "Mr. Li came! ", "国际移民组织。", "边境，管理；", "\n\n", "\n", "  ", "a", "。", "x" * 30]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(mixed, st.integers(5, 60), st.integers(0, 4))
def test_offsets_are_exact_on_mixed_text(text: str, size: int, overlap: int) -> None:
    for c in chunk(doc(text), ChunkSettings(size=size, overlap=overlap)):
        assert text[c.start : c.end] == c.text
        assert c.text.strip() == c.text and c.text
    for s, e in split_sentences(text):
        assert text[s:e].strip() == text[s:e] and s < e


def test_sentence_clipping_matches_the_plain_scan_and_big_sections_are_cut_in_blocks() -> None:
    import dataclasses

    import rag.chunk as ch
    from rag.types import Meta

    text = "\n\n".join(f"Paragraph {i}. It has two sentences about seminar {i}。第二句话{i}。" for i in range(400))
    doc = Document("big", text, Meta(title="t"), "en")
    sentences = ch.split_sentences(text)
    small = dataclasses.replace(ch.ChunkSettings(), size=40, overlap=10)
    seen: list[tuple[int, int]] = []
    chunks = ch.chunk(doc, small, lambda done, total: seen.append((done, total)))
    for c in chunks:
        plain = tuple((max(s, c.start), min(e, c.end)) for s, e in sentences if e > c.start and s < c.end)
        assert c.sentences == plain and text[c.start : c.end] == c.text
    assert seen[-1] == (len(text), len(text))
    blocks = ch._blocks(text, 0, len(text), size=5000)
    assert len(blocks) > 3 and all(b - a <= 5000 for a, b in blocks)
    assert all(text[b : b + 2] == "\n\n" for _a, b in blocks[:-1])
