"""Chunks and sentences as columns (rag.tables): the rows they give back are the rows written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.store import open_index
from rag.tables import ChunkTable, Joined, SentenceTable, load_tables, save_tables
from rag.types import Chunk, Document, Meta

TEXT = "Alpha beta. Gamma delta.\n\nEpsilon zeta."
DOC = Document(doc_id="d1", text=TEXT, meta=Meta(title="T"), language="en", content_hash="h")
CHUNKS = [
    Chunk("d1#0", "d1", 0, 0, 24, TEXT[0:24], ((0, 11), (12, 24)), "Intro", "", "en"),
    Chunk("d1#1", "d1", 1, 26, 39, TEXT[26:39], ((26, 39),), "Body", "Head", "en"),
]
SENTENCES = [("d1", 0, 11), ("d1", 12, 24), ("d1", 26, 39)]


def test_tables_round_trip(tmp_path: Path) -> None:
    chunks = ChunkTable.of(CHUNKS, {"d1": DOC})
    sentences = SentenceTable.of(SENTENCES, ["d1"])
    assert chunks is not None and sentences is not None
    save_tables(tmp_path, chunks, sentences)
    got_chunks, got_sentences = load_tables(tmp_path, {"d1": DOC})
    assert list(got_chunks) == CHUNKS and got_chunks[-1] == CHUNKS[1] and got_chunks[0:1] == CHUNKS[:1]
    assert list(got_sentences) == SENTENCES and got_sentences[2] == ("d1", 26, 39)
    assert got_chunks.chunk_ids() == ["d1#0", "d1#1"] and not got_chunks.ids  # ids derived, not stored


def test_chunks_not_cut_from_their_document_are_not_tabled() -> None:
    odd = [CHUNKS[0], Chunk("x", "d1", 1, 26, 39, "not the text", (), "", "", "en")]
    assert ChunkTable.of(odd, {"d1": DOC}) is None
    assert SentenceTable.of([("other", 0, 1)], ["d1"]) is None
    kept = ChunkTable.of([Chunk("custom-id", "d1", 0, 0, 24, TEXT[0:24], (), "", "", "en")], {"d1": DOC})
    assert kept is not None and kept[0].chunk_id == "custom-id"


def test_joined_reads_parts_as_one() -> None:
    joined = Joined([[1, 2], [], [3]])
    assert len(joined) == 3 and list(joined) == [1, 2, 3] and joined[2] == 3 and joined[-1] == 3
    with pytest.raises(IndexError):
        joined[3]


def test_a_segment_without_tables_opens_as_one_with_them(settings, corpus) -> None:
    pipe = Pipeline(settings, {"hash": HashEmbedder()})
    pipe.ingest([corpus])
    with_tables = open_index(settings.index_dir, ("hash",))
    chunks, sentences = list(with_tables.chunks), list(with_tables.sentences)
    assert isinstance(with_tables.parts[0].segment.chunks, ChunkTable)
    ranges = list(with_tables.chunk_sentences)
    folder = settings.index_dir / "segments" / with_tables.parts[0].segment.name
    del with_tables
    import gc

    gc.collect()  # the opened segment is shared while referenced
    (folder / "table.npz").unlink()
    (folder / "table.json").unlink()  # a segment written before tables: read from its jsonl
    shutil.rmtree(folder / "mentions")  # and before the name checks' postings: derived when first asked
    old = open_index(settings.index_dir, ("hash",))
    assert list(old.chunks) == chunks and list(old.sentences) == sentences
    assert list(old.chunk_sentences) == ranges
    assert pipe.search("Where was the seminar on migrant integration held?")[0].chunk.doc_id == "news-en"
    assert old.corpus.mentions("Hangzhou") and not old.corpus.mentions("Lisbon")
    (corpus / "extra.txt").write_text("EXTRA\n\nThe seminar in Lisbon.\n", "utf-8")
    pipe.ingest([corpus / "extra.txt"])  # the next write gives the kept segment its tables
    assert (folder / "table.npz").exists() and (folder / "table.json").exists() and (folder / "mentions").is_dir()
    new = open_index(settings.index_dir, ("hash",))
    assert new.corpus.mentions("Hangzhou") and new.corpus.mentions("Lisbon") and not new.corpus.mentions("Paris")
    assert load_tables(folder, old.parts[0].segment.documents)[0][0] == chunks[0]


def test_row_file_reads_rows_as_the_array(tmp_path: Path) -> None:
    import numpy as np

    from rag.rowfile import RowFile

    a = np.arange(40, dtype=np.float32).reshape(10, 4)
    np.save(tmp_path / "v.npy", a)
    rows = RowFile(tmp_path / "v.npy")
    assert rows.shape == (10, 4) and len(rows) == 10
    for key in (3, -1, [7, 2, 3, 3, 9], np.array([], np.int64), slice(2, 5), slice(None, None, 3), a[:, 0] > 20):
        np.testing.assert_array_equal(rows[key], a[key])
    np.testing.assert_array_equal(np.asarray(rows), a)
    np.testing.assert_array_equal(rows @ np.ones(4, np.float32), a @ np.ones(4, np.float32))
    (tmp_path / "v.npy").unlink()
    np.testing.assert_array_equal(rows[[1, 2]], a[[1, 2]])  # opened once: readable after it is deleted
    with pytest.raises(IndexError):
        rows[10]


def test_sentence_ranges_of_tables_equal_the_mapping_in_any_row_order() -> None:
    from rag.segments import SentenceRanges, map_chunk_sentences

    chunks = ChunkTable.of(CHUNKS, {"d1": DOC})
    assert chunks is not None
    for rows in (SENTENCES, [SENTENCES[2], SENTENCES[0], SENTENCES[1]]):  # in text order, then not
        sentences = SentenceTable.of(rows, ["d1"])
        assert sentences is not None
        assert list(SentenceRanges.of(chunks, sentences)) == map_chunk_sentences(CHUNKS, rows)
