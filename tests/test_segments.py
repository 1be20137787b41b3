"""Segmented index: BM25 across segments, tombstones, merges, memory maps (rag/segments.py, rag/store.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag import segments
from rag.embed import HashEmbedder
from rag.lexical import LexicalIndex, SegmentedLexical
from rag.pipeline import Pipeline
from rag.store import merge_plan, open_index

PASSAGES = [
    "A seminar on migrant integration was held in Hangzhou with experts from ten member states.",
    "Border management at ports of entry: officers check passports and visas of travellers.",
    "移民融合研讨会在杭州举行，专家们讨论了移民如何融入当地社区。",
    "口岸边境管理：边检人员在入境口岸检查旅客的护照和签证。",
    "The visa-free transit policy was resumed for travellers from 53 countries at the ports.",
    "签证便利政策恢复，来自欧洲的专家介绍了边境管理的经验。",
]
LANGUAGES = ["en", "en", "zh", "zh", "en", "zh"]
QUERIES = ["Where was the seminar on migrant integration held?", "边境管理 签证", "visa ports travellers"]


def test_bm25_over_segments_with_deleted_rows_equals_one_index_over_the_live_rows() -> None:
    first = LexicalIndex.build(PASSAGES[:4], LANGUAGES[:4])
    second = LexicalIndex.build(PASSAGES[4:], LANGUAGES[4:])
    live = np.array([True, False, True, True])  # row 1 deleted (a tombstoned newsletter)
    split = SegmentedLexical([(0, first, live), (4, second, None)])
    kept = [0, 2, 3, 4, 5]
    whole = LexicalIndex.build([PASSAGES[i] for i in kept], [LANGUAGES[i] for i in kept])
    for q in QUERIES:
        got, want = split.scores(q), whole.scores(q)
        assert got[1] == 0.0 and want.max() > 0
        np.testing.assert_allclose(got[kept], want, rtol=1e-6, atol=1e-7)
        merged = LexicalIndex.concat([(first, live), (second, None)])  # a merge copies counts: same scores
        np.testing.assert_allclose(merged.scores(q), want, rtol=1e-6, atol=1e-7)
    assert split.document_frequency("seminar", "en")[1] == 3  # (tombstones are not subtracted here)


def _mapped(a: np.ndarray) -> bool:
    """True when the array's memory is a file mapping (np.load(..., mmap_mode="r")), not a copy."""
    import mmap

    while a is not None:
        if isinstance(a, (np.memmap, mmap.mmap)):
            return True
        a = getattr(a, "base", None)
    return False


def test_lexical_arrays_are_memory_mapped_and_read_back_equal(tmp_path: Path) -> None:
    index = LexicalIndex.build(PASSAGES, LANGUAGES)
    index.save(tmp_path / "lex")
    loaded = LexicalIndex.load(tmp_path / "lex")
    tf = loaded.native["en"].tf
    assert all(_mapped(a) for a in (tf.data, tf.indices, tf.indptr))  # mapped, not copied
    assert isinstance(loaded.native["zh"].lengths, np.memmap)
    for q in QUERIES:
        assert loaded.scores(q).tolist() == index.scores(q).tolist()


def test_rows_index_like_the_concatenated_array() -> None:
    parts = [np.arange(6, dtype=np.float32).reshape(3, 2), np.arange(6, 10, dtype=np.float32).reshape(2, 2)]
    rows, whole = segments.Rows(parts, 2), np.concatenate(parts)
    assert len(rows) == 5 and rows.shape == (5, 2)
    assert rows[3].tolist() == whole[3].tolist() and rows[-1].tolist() == whole[-1].tolist()
    sel = np.array([4, 0, 3, 3])
    assert rows[sel].tolist() == whole[sel].tolist() and np.asarray(rows).tolist() == whole.tolist()


def _hits(pipe: Pipeline, question: str) -> dict[str, float]:
    return {h.chunk.chunk_id: h.score for h in pipe.search(question, k=5)}


def _same_hits(a: dict[str, float], b: dict[str, float]) -> bool:
    """The same passages with the same scores (rows differ in order between the indexes: ties may swap)."""
    return a.keys() == b.keys() and all(abs(a[c] - b[c]) < 1e-4 for c in a)


def _write(corpus: Path, name: str, text: str) -> None:
    (corpus / name).write_text(text, "utf-8")


def test_an_ingest_writes_one_segment_of_what_changed_and_tombstones_the_rest(settings, corpus, tmp_path) -> None:
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _write(corpus, "other.txt", "OTHER\n\nReturns and readmission were discussed in Brussels.\n")
    pipe.ingest([corpus])
    [first] = json.loads((settings.index_dir / "manifest.json").read_text())["segments"]
    _write(corpus, "extra.txt", "EXTRA\n\nThe visa seminar moved to Xi'an in 2024.\n")
    _write(corpus, "news-en.txt", "CHANGED\n\nThe seminar on migrant integration moved to Lhasa.\n")
    report = pipe.ingest([corpus])
    assert report.added == ("extra",) and report.updated == ("news-en",) and report.embedded_chunks == 2
    top = json.loads((settings.index_dir / "manifest.json").read_text())
    old, new = top["segments"]  # (1 of 3 deleted: no merge)
    assert old == {**first, "deleted": ["news-en"]}  # the first segment is kept as it was, news-en tombstoned
    assert new["documents"] == 2 and new["chunks"] == 2  # only the new and the changed newsletter
    index = open_index(settings.index_dir, ("hash",))
    assert sorted(index.documents) == ["extra", "news-en", "news-zh", "other"] and index.live is not None
    dead = sum(c.doc_id == "news-en" for c in index.parts[0].segment.chunks)  # its old rows, masked out
    assert dead and int(index.live.sum()) == top["counts"]["chunks"] == len(index.chunks) - dead
    # the same answers as an index built from scratch over the same newsletters
    fresh = Pipeline(settings.replace(index_root=tmp_path / "fresh"), {"hash": HashEmbedder()})
    fresh.ingest([corpus])
    assert len(json.loads((fresh.settings.index_dir / "manifest.json").read_text())["segments"]) == 1
    for q in ("Where did the seminar move?", "边境管理研讨会在哪里举行？", "visa Xi'an"):
        assert _same_hits(_hits(pipe, q), _hits(fresh, q))
    pipe.remove(["extra"])
    assert sorted(open_index(settings.index_dir, ("hash",)).documents) == ["news-en", "news-zh", "other"]


def test_small_segments_merge_past_the_limit_and_answers_stay_the_same(settings, corpus, tmp_path) -> None:
    s = settings.replace(max_segments=2)
    pipe = Pipeline(s, {"hash": HashEmbedder()})
    pipe.ingest([corpus])
    for i in range(3):
        _write(corpus, f"extra-{i}.txt", f"EXTRA {i}\n\nSeminar number {i} on border management met in city {i}.\n")
        pipe.ingest([corpus / f"extra-{i}.txt"])
        assert len(json.loads((s.index_dir / "manifest.json").read_text())["segments"]) <= 2
    assert sorted(p.name for p in (s.index_dir / "segments").iterdir()) == sorted(
        e["name"] for e in json.loads((s.index_dir / "manifest.json").read_text())["segments"]
    )  # merged-away segments are deleted
    fresh = Pipeline(s.replace(index_root=tmp_path / "fresh"), {"hash": HashEmbedder()})
    fresh.ingest([corpus])
    for q in ("Which seminar met in city 2?", "边境管理研讨会在哪里举行？"):
        assert _same_hits(_hits(pipe, q), _hits(fresh, q))


def test_merge_plan_merges_the_smallest_and_purges_half_deleted_segments() -> None:
    def seg(name: str, chunks: int, docs: int = 10, deleted: int = 0) -> dict:
        return {"name": name, "chunks": chunks, "documents": docs, "deleted": [f"d{i}" for i in range(deleted)]}

    big = seg("big", 90_000)
    assert merge_plan([big, seg("a", 10), seg("b", 20)], max_segments=3, max_chunks=50_000) == []
    assert merge_plan([big, seg("a", 10), seg("b", 20), seg("c", 5)], 3, 50_000) == ["c", "a", "b"]
    assert merge_plan([big, seg("a", 10, deleted=5)], 8, 50_000) == ["a"]  # half of it deleted: rewritten
    assert merge_plan([big, seg("x", 40_000), seg("y", 30_000), seg("z", 1)], 3, 50_000) == ["z", "y"]
    assert merge_plan([big, seg("big2", 60_000), seg("z", 1)], 2, 50_000) == []  # nothing small to merge with


def test_a_segment_above_the_flat_limit_is_searched_through_hnsw(settings, corpus, monkeypatch) -> None:
    monkeypatch.setattr(segments, "FLAT_MAX", 3)
    monkeypatch.setattr(segments, "EXACT_POOL", 1)
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.ingest([corpus])
    [entry] = json.loads((settings.index_dir / "manifest.json").read_text())["segments"]
    assert entry["dense"] == "hnsw" and entry["chunks"] > 3
    assert (settings.index_dir / "segments" / entry["name"] / "hnsw-hash.faiss").exists()
    index = pipe.index()
    seg = index.parts[0].segment
    assert not seg.graphs and seg.graph_files  # the graph is read at the first search, from the file opened
    import shutil

    shutil.rmtree(settings.index_dir / "segments" / entry["name"])  # deleted meanwhile (as a writer may)
    q = HashEmbedder().encode_queries(["seminar on migrant integration in Hangzhou"])[0]
    rows, scores = seg.top("hash", q, 2, None)
    exact = np.sort(np.asarray(seg.vectors["hash"]) @ q)[::-1][:2]
    np.testing.assert_allclose(scores, exact, rtol=1e-5)  # the two best cosines (a tiny graph is exact)
    assert seg.graphs and not seg.graph_files
    assert len(set(rows.tolist())) == 2
    assert pipe.search("Where was the seminar on migrant integration held?")[0].chunk.doc_id == "news-en"


@pytest.mark.parametrize("n", [1, 3])
def test_reopening_shares_the_segments_already_open(settings, corpus, n) -> None:
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.ingest([corpus])
    before = open_index(settings.index_dir, ("hash",))
    for i in range(n):
        _write(corpus, f"extra-{i}.txt", f"EXTRA {i}\n\nSeminar {i}.\n")
        pipe.ingest([corpus / f"extra-{i}.txt"])
    after = open_index(settings.index_dir, ("hash",))
    assert after.parts[0].segment is before.parts[0].segment  # read once, memory-mapped, shared


def test_corpus_and_search_arrays_of_segments_equal_those_built_over_the_live_documents(settings, corpus) -> None:
    from rag.retrieve import SearchState
    from rag.scope import Corpus

    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _write(corpus, "other.txt", "OTHER\n\nReturns were discussed in Brussels by Ms Kowalska.\n")
    pipe.ingest([corpus])
    _write(corpus, "other.txt", "OTHER\n\nReadmission was discussed in Lisbon.\n")  # Brussels now only in a dead row
    _write(corpus, "extra.txt", "EXTRA\n\nThe Xi'an seminar.\n")
    pipe.ingest([corpus])
    index = open_index(settings.index_dir, ("hash",))
    assert len(index.parts) == 2 and index.live is not None
    want = Corpus.of((d.text, d.language) for d in index.documents.values())
    got = index.corpus
    for term in ("Brussels", "Lisbon", "Kowalska", "Ms Kowalska", "Xi'an", "xi", "readmission", "returns", "seminar"):
        assert got.mentions(term) == want.mentions(term), term
    assert got.languages == want.languages and not got.mentions("Brussels") and got.mentions("Lisbon")
    st = SearchState._of_segments(index)
    live = np.flatnonzero(index.live)
    assert st.row_of == {index.chunks[i].chunk_id: int(i) for i in live}
    assert [st.doc_ids[st.chunk_doc[i]] for i in live] == [index.chunks[i].doc_id for i in live]
    assert [st.sections[st.chunk_section[i]] for i in live] == [index.chunks[i].section.lower() for i in live]
    assert (st.chunk_doc[~index.live] == -1).all()


def _replaced(settings, corpus, before: str, after: str):  # type: ignore[no-untyped-def]
    """A pipeline and its index after one newsletter was written as `before`, ingested, rewritten as `after`
    and ingested again: two segments, the first version's rows tombstoned."""
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _write(corpus, "other.txt", before)
    pipe.ingest([corpus])
    _write(corpus, "other.txt", after)
    pipe.ingest([corpus])
    return pipe, open_index(settings.index_dir, ("hash",))


def test_sentence_rows_per_document_of_segments(settings, corpus) -> None:
    _pipe, index = _replaced(
        settings,
        corpus,
        "OTHER\n\nReturns were discussed. Readmission too.\n",
        "OTHER\n\nReadmission was discussed in Lisbon. Then returns.\n",
    )
    want: dict[str, list[int]] = {}
    for row, (d, _a, _b) in enumerate(index.sentences):
        if index.sentence_live[row]:
            want.setdefault(d, []).append(row)
    assert {d: index.doc_sentence_rows[d] for d in index.doc_sentence_rows} == want
    assert index.doc_sentence_rows.get("gone", []) == []


def test_sentence_ranges_equal_the_chunk_by_chunk_map(settings, corpus) -> None:
    from rag.segments import SentenceRanges, map_chunk_sentences

    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    _write(corpus, "other.txt", "OTHER\n\n" + " ".join(f"Sentence {i} is about returns." for i in range(60)) + "\n")
    pipe.ingest([corpus])
    seg = pipe.index().parts[0].segment
    ranges = SentenceRanges.of(seg.chunks, seg.sentences)
    assert isinstance(ranges, SentenceRanges) and len(seg.chunks) > 3
    assert list(ranges) == map_chunk_sentences(seg.chunks, seg.sentences)


def test_an_unfiltered_search_over_deleted_rows_keeps_bm25_to_its_top_matches(settings, corpus, monkeypatch) -> None:
    """Tombstones alone are no filter: BM25 stays on its top-k path (deleted rows never score there), so a
    question costs the same before and after an update, and the hits equal those of the merged index."""
    from rag.lexical import SegmentedLexical
    from rag.retrieve import Filters, search

    pipe, index = _replaced(
        settings,
        corpus,
        "OTHER\n\nReturns were discussed in Brussels by Ms Kowalska.\n",
        "OTHER\n\nReadmission was discussed in Brussels.\n",
    )
    assert index.live is not None and not index.live.all()
    query = "Who discussed returns in Brussels?"
    qv = {"hash": HashEmbedder().encode_queries([query])[0]}
    want = [(h.chunk.chunk_id, h.score) for h in search(index, query, qv, pipe.fusion(), k=3)]

    def everything(*_a, **_k):  # type: ignore[no-untyped-def]
        raise AssertionError("BM25 scored every row of an unfiltered question")

    fresh = Pipeline(settings.replace(index_name="fresh"), {"hash": HashEmbedder()})  # the live documents only
    fresh.ingest([corpus])
    assert [(h.chunk.chunk_id, h.score) for h in fresh.search(query, k=3)] == want
    monkeypatch.setattr(SegmentedLexical, "scores", everything)
    assert [(h.chunk.chunk_id, h.score) for h in search(index, query, qv, pipe.fusion(), k=3)] == want
    with pytest.raises(AssertionError, match="every row"):  # a real filter still needs every match
        search(index, query, qv, pipe.fusion(), Filters(language="en"), k=3)
