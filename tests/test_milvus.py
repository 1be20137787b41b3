"""The Milvus backend against Milvus Lite (a local .db file, the client API of a Milvus server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag import milvus_store
from rag.embed import HashEmbedder
from rag.lexical import LexicalIndex
from rag.milvus_store import MilvusIndex, filter_expr
from rag.pipeline import Pipeline
from rag.retrieve import Filters
from rag.service import Service
from rag.settings import Settings
from rag.sparse import document_sparse, query_sparse, sparse_dot
from rag.store import IndexMismatch

EN_Q = "Where was the Seminar on Migrant Integration held?"
ZH_Q = "移民融合研讨会在哪里举行？"  # no word in common with the English passage: only CC-CEDICT links them


def milvus(settings: Settings) -> Settings:
    return settings.replace(index_backend="milvus")


def pipe(settings: Settings) -> Pipeline:
    return Pipeline(settings, {"hash": HashEmbedder()})


@pytest.fixture
def built(settings: Settings, corpus: Path) -> Pipeline:
    p = pipe(milvus(settings))
    p.ingest([corpus])
    return p


def entities(p: Pipeline, collection: str, expr: str = 'pk != ""') -> list[dict]:
    store = p.store
    assert isinstance(store, milvus_store.MilvusStore)
    return store.query(collection, expr, ["pk", "doc_id"] if collection.endswith("_chunks") else ["pk"])


def test_sparse_vectors_score_as_the_lexical_index() -> None:
    texts = [
        "On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China.",
        "The NIA resumed the issuance of port visas and the 144-hour visa-free transit policy.",
        "2021年6月27日，边境管理系统研讨会在北京举行。来自欧洲的专家介绍了风险评估中心的经验。",
        "移民融合研讨会在杭州举行，30多名代表出席。",
    ]
    lex = LexicalIndex.build(texts, ["en", "en", "zh", "zh"])
    docs = document_sparse(lex)
    for q in (EN_Q, ZH_Q, "免签过境政策", "visa-free transit policy", "边境管理研讨会"):
        local = lex.scores(q)
        remote = np.array([sparse_dot(query_sparse(lex, q), d) for d in docs])
        assert np.allclose(remote, local, atol=0.02), (q, local, remote)
        assert (remote > 0).tolist() == (local > 0).tolist()
    # Cross-language: the Chinese question reaches the English passages through CC-CEDICT, and vice versa.
    assert sparse_dot(query_sparse(lex, "免签过境政策"), docs[1]) > 0.4
    assert sparse_dot(query_sparse(lex, EN_Q), docs[3]) > 0.1


def test_filters_as_milvus_expressions() -> None:
    assert filter_expr(Filters()) == ""
    assert filter_expr(Filters(language="zh-hant")) == 'language == "zh"'
    assert filter_expr(Filters(language="en", issue=" 11 ")) == 'doc_language == "en" and issue == "11"'
    assert filter_expr(Filters(date_from="2023-01-01", date_to="2023-12-31")) == (
        '(date_end == "" or date_end >= "2023-01-01") and (date_start == "" or date_start <= "2023-12-31")'
    )
    assert filter_expr(Filters(section="50%_Off", doc_ids=('a"b',), exclude=("c",))) == (
        r'section like "%50\\%\\_off%" and doc_id in ["a\"b"] and doc_id not in ["c"]'
    )


def test_ingest_then_ask_answers_with_citations_through_the_service(built: Pipeline) -> None:
    index = built.index()
    assert isinstance(index, MilvusIndex)
    record = index.manifest.backend
    assert record["name"] == "milvus" and record["uri"].endswith("index/default/milvus.db")
    version = built.settings.index_dir / "versions" / index.version
    assert not list(version.glob("vectors-*")) and not list(version.glob("sentences-*"))  # vectors: in Milvus
    assert len(entities(built, "nqa_default_chunks")) == len(index.chunks)
    assert len(entities(built, "nqa_default_sentences")) == len(index.sentences)
    answer = Service(built).ask(EN_Q)
    assert not answer.abstained and "Hangzhou" in answer.answer
    assert answer.citations and answer.citations[0].doc_id == "news-en"
    cited = answer.citations[0]
    assert index.documents["news-en"].text[cited.start : cited.end] == cited.quote


def test_hybrid_search_finds_an_english_passage_for_a_chinese_question_by_its_lexical_route(
    built: Pipeline,
) -> None:
    lexical_only = pipe(built.settings.replace(weights={"hash": 0.0, "bm25": 1.0}))
    hits = lexical_only.search(ZH_Q, k=5, filters=Filters(language="en"))
    assert hits and hits[0].chunk.doc_id == "news-en" and "Migrant Integration" in hits[0].chunk.text
    assert hits[0].channels["bm25"] > 0 and "hash" not in hits[0].channels
    both = built.search(ZH_Q, k=5)
    assert {h.chunk.doc_id for h in both} == {"news-zh", "news-en"}


FILTERS = (
    Filters(language="zh"),
    Filters(language="en", issue="11"),
    Filters(date_to="2021-12-31"),
    Filters(date_from="2022-01-01"),
    Filters(section="policy"),
    Filters(doc_ids=("news-zh",)),
    Filters(exclude=("news-zh",)),
    Filters(issue="12"),
)


def test_filters_select_the_passages_the_folder_backend_selects(
    built: Pipeline, settings: Settings, corpus: Path
) -> None:
    folder = pipe(settings.replace(index_name="folder"))
    folder.ingest([corpus])
    for filters in FILTERS:
        for q in (EN_Q, ZH_Q, "visa policy"):
            got = [h.chunk.chunk_id for h in built.search(q, k=10, filters=filters)]
            want = [h.chunk.chunk_id for h in folder.search(q, k=10, filters=filters)]
            assert sorted(got) == sorted(want), (q, filters)
            assert got[:1] == want[:1], (q, filters)
    assert not built.search(EN_Q, filters=Filters(issue="12"))
    assert {h.chunk.doc_id for h in built.search(EN_Q, k=10, filters=Filters(language="zh"))} == {"news-zh"}


def test_vectors_come_back_from_milvus_as_written(
    built: Pipeline, settings: Settings, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = pipe(settings.replace(index_name="folder"))
    folder.ingest([corpus])
    remote, local = built.index(), folder.index()
    monkeypatch.setattr(milvus_store, "CACHE_ROWS", 2)  # a read larger than the cache still returns every row
    for ch, want in local.sentence_vectors.items():
        got = remote.sentence_vectors[ch]
        assert got.shape == want.shape and len(got) == len(local.sentences)
        np.testing.assert_array_equal(got[np.arange(len(want))], want)
        np.testing.assert_array_equal(got[5], want[5])
        np.testing.assert_array_equal(remote.vectors[ch][[3, 0]], local.vectors[ch][[3, 0]])


def test_remove_and_replace_a_document_delete_its_entities(built: Pipeline, corpus: Path) -> None:
    built.remove(["news-zh"])
    index = built.index()
    assert set(index.documents) == {"news-en"}
    assert entities(built, "nqa_default_chunks", 'doc_id == "news-zh"') == []
    assert len(entities(built, "nqa_default_sentences")) == len(index.sentences)
    assert all(h.chunk.doc_id == "news-en" for h in built.search(ZH_Q, k=10))
    before = {e["pk"] for e in entities(built, "nqa_default_chunks")}
    (corpus / "news-en.txt").write_text(
        (corpus / "news-en.txt").read_text("utf-8").replace("Hangzhou", "Ningbo"), "utf-8"
    )
    report = built.ingest([corpus / "news-en.txt"])
    assert report.updated == ("news-en",)
    after = {e["pk"] for e in entities(built, "nqa_default_chunks")}
    assert after and not (after & before)  # new keys, the old entities deleted
    assert len(after) == len(built.index().chunks)
    answer = built.ask(EN_Q)
    assert "Ningbo" in answer.answer and "Hangzhou" not in answer.answer


def test_an_unchanged_document_is_not_written_again(built: Pipeline, corpus: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "more.txt").write_text("POLICY CORNER\n\nThe walrus festival took place in Tromsø.\n", "utf-8")
    pks = {e["pk"] for e in entities(built, "nqa_default_chunks")}
    store = built.store
    written: list[str] = []
    real = store._upsert

    def spy(collection, rows):  # type: ignore[no-untyped-def]
        rows = list(rows)
        written.extend(r["pk"] for r in rows)
        real(collection, rows)

    store._upsert = spy  # type: ignore[method-assign]
    built.ingest([extra / "more.txt"])
    assert written and not (set(written) & pks)
    assert built.search("walrus festival", k=1)[0].chunk.doc_id == "more"


def test_reopens_from_the_db_file(built: Pipeline) -> None:
    first = [h.chunk.chunk_id for h in built.search(EN_Q, k=3)]
    uri = built.index().manifest.backend["uri"]
    milvus_store.close(uri)  # stops this process's Milvus Lite: the next client reads the file again
    again = pipe(built.settings)
    assert [h.chunk.chunk_id for h in again.search(EN_Q, k=3)] == first
    assert "Hangzhou" in again.ask(EN_Q).answer


def test_an_index_is_opened_only_by_the_backend_that_wrote_it(built: Pipeline) -> None:
    with pytest.raises(IndexMismatch, match="keeps its vectors in milvus"):
        pipe(built.settings.replace(index_backend="faiss")).index()
    with pytest.raises(ValueError, match="unknown index_backend"):
        pipe(built.settings.replace(index_backend="qdrant")).index()
    rebuilt = pipe(built.settings.replace(index_backend="faiss"))
    rebuilt.update([], rebuild=True)  # `ingest --rebuild`: the stored documents, vectors back in the folder
    assert type(rebuilt.index()).__name__ == "Index" and rebuilt.index().manifest.backend == {}
    assert "Hangzhou" in rebuilt.ask(EN_Q).answer


@pytest.mark.slow
@pytest.mark.parametrize(
    "question,expected",
    [
        (EN_Q, "Hangzhou"),
        (ZH_Q, "杭州"),
        ("移民融合研討會在哪裡舉行？", "杭州"),
    ],
)
def test_the_default_models_answer_from_milvus(real: Pipeline, question: str, expected: str) -> None:
    answer = real.ask(question)
    assert not answer.abstained and expected in answer.answer and answer.citations
    for c in answer.citations:
        assert real.index().documents[c.doc_id].text[c.start : c.end] == c.quote


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """The shipped settings (use + e5 + BM25) on the sample corpus, vectors in Milvus Lite; built once."""
    tmp = tmp_path_factory.mktemp("milvus-sample")
    p = Pipeline(Settings(index_root=tmp / "index", data_dir=tmp / "var", index_backend="milvus"))
    assert isinstance(p.index(), MilvusIndex)  # built from data/newsletters on first use
    return p


def test_index_list_names_where_the_vectors_are(
    built: Pipeline, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.cli import main

    monkeypatch.setenv("RAG_INDEX_ROOT", str(built.settings.index_root))
    assert main(["index", "list"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("default: 2 newsletters, 4 chunks, embedders hash + bm25, built ")
    assert first.endswith(f"vectors in Milvus at {built.settings.index_dir / 'milvus.db'}")
