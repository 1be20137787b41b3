"""The compiled BM25 scorer (rag.bm25_jit) against the numpy one it replaces: equal bit for bit.

Random fields with fractional counts (translated passages have them), concepts of several weighted terms, terms
shared between concepts, tombstones, several segments, empty queries and queries that match nothing.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

from rag import lexical
from rag.lexical import (
    SegmentedLexical,
    Settings,
    _compiled_totals,
    _Field,
    _field_scores,
    _live_stats,
    _numpy_field_scores,
    _numpy_totals,
)
from tests.test_bm25_top import LANGUAGES, PASSAGES, QUERIES

pytest.importorskip("numba")
S = Settings()


def _field(rng: np.random.Generator, rows: int, vocab: int, fractional: bool) -> _Field:
    tf = sparse.random(rows, vocab, density=0.35, random_state=rng, dtype=np.float32, format="csc")
    tf.data = (tf.data * 3).astype(np.float32) if fractional else np.ceil(tf.data * 4).astype(np.float32)
    tf.sort_indices()
    return _Field({f"t{i}": i for i in range(vocab)}, tf)


def _query(rng: np.random.Generator, vocab: int) -> list[tuple[tuple[str, float], ...]]:
    """1–5 concepts of 1–6 terms (some outside the vocabulary), weights in (0, 1], best first."""
    out = []
    for _ in range(int(rng.integers(1, 6))):
        terms = rng.choice(vocab + 3, size=int(rng.integers(1, 7)), replace=False)
        weights = sorted((float(x) for x in rng.random(len(terms))), reverse=True)
        out.append(tuple((f"t{t}", 1.0 if i == 0 else w) for i, (t, w) in enumerate(zip(terms, weights, strict=True))))
    return out


def _parts(rng: np.random.Generator, fractional: bool, tombstones: bool) -> list[lexical.Part]:
    sizes = [int(x) for x in rng.integers(1, 60, int(rng.integers(1, 5)))]
    offsets = np.cumsum([0, *sizes])
    return [
        (_field(rng, n, 10, fractional), np.arange(n) + o, rng.random(n) > 0.3 if tombstones else None)
        for o, n in zip(offsets, sizes, strict=False)
    ]


def _same(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        (g is None and w is None) or (g is not None and w is not None and g.dtype == w.dtype and np.array_equal(g, w))
        for g, w in zip(got, want, strict=True)
    )


def test_compiled_field_scores_equal_numpy_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    for trial in range(60):
        parts = _parts(rng, fractional=trial % 2 == 0, tombstones=trial % 3 == 0)
        query = _query(rng, 10)
        assert _same(_field_scores(parts, query, S), _numpy_field_scores(parts, query, S)), trial


def test_compiled_sums_and_postings_equal_numpy_before_rounding_to_float32() -> None:
    """The float64 sums themselves (a float32 score hides most float64 rounding differences), and each concept's
    summed counts, so a kernel adding in another order or precision fails here."""
    jit = lexical._compiled()
    rng = np.random.default_rng(7)
    for trial in range(60):
        parts = _parts(rng, fractional=True, tombstones=trial % 2 == 0)
        query = _query(rng, 10)
        got, got_self = _compiled_totals(jit, parts, query, S, _live_stats(parts))
        want, want_self = _numpy_totals(parts, query, S)
        assert got_self == want_self and _same(got, want), trial
        for f, rows, live in parts:
            terms = f.columns(query)
            df, r, v, ptr = jit.gather(
                f._csc, terms, lexical._NO_LIVE if live is None else live, live is not None, len(rows)
            )
            postings = {qi: (pr, pv) for qi, pr, pv in f.postings(query, live)}
            for qi in range(len(query)):
                pr, pv = postings.get(qi, (np.zeros(0, np.int64), np.zeros(0, np.float32)))
                assert df[qi] == len(pr)
                if terms[2][qi + 1] - terms[2][qi] > 1:  # a concept of several terms: its summed counts
                    order = np.argsort(r[ptr[qi] : ptr[qi + 1]])
                    assert np.array_equal(r[ptr[qi] : ptr[qi + 1]][order], pr)
                    assert np.array_equal(v[ptr[qi] : ptr[qi + 1]][order], pv) and pv.dtype == v.dtype


def test_compiled_field_scores_of_empty_and_unmatched_queries() -> None:
    rng = np.random.default_rng(5)
    parts = _parts(rng, fractional=True, tombstones=True)
    for query in ([], [(("absent", 1.0),)], [(("absent", 1.0), ("missing", 0.5))]):
        assert _field_scores(parts, query, S) == [None] * len(parts)
        assert _numpy_field_scores(parts, query, S) == [None] * len(parts)
    dead = [(f, rows, np.zeros(len(rows), bool)) for f, rows, _ in parts]  # every row deleted
    assert _field_scores(dead, [(("t1", 1.0),)], S) == [None] * len(parts)


def test_compiled_segmented_scores_and_top_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    first = lexical.LexicalIndex.build(PASSAGES[:5], LANGUAGES[:5])
    second = lexical.LexicalIndex.build(PASSAGES[5:], LANGUAGES[5:])
    cases = []
    for live in (None, np.array([True, False, True, True, False])):
        for q in [*QUERIES, "no such words at all", "签证 visa 边境 border seminar 研讨会"]:
            for language in (None, "en", "zh"):
                cases.append((SegmentedLexical([(0, first, live), (5, second, None)]), q, language))

    def run() -> list:
        out = []
        for split, q, language in cases:
            parts = split.part_scores(q, language)
            out.append(([r.tolist() for r, _ in parts], [s.tobytes() for _, s in parts]))
            for k in (0, 1, 3, 50):
                rows, scores = split.top(q, k, language)
                out.append((rows.tolist(), scores.tobytes()))
        return out

    compiled = run()
    monkeypatch.setattr(lexical, "_compiled", lambda: None)
    assert compiled == run()


def test_compiled_top_keeps_ties_by_row_with_and_without_the_translated_field() -> None:
    """The heap (and its bound that skips rows) against `top_k` over every row's score computed in numpy."""
    from rag import bm25_jit

    rng = np.random.default_rng(2)
    for trial in range(40):
        n = int(rng.integers(1, 400))
        tn = np.round(rng.random(n), 1) * (rng.random(n) > 0.3) if trial % 3 else lexical._NONE  # ties and zeros
        tt = np.round(rng.random(n), 1) * (rng.random(n) > 0.5) if trial % 4 else lexical._NONE
        pair, w = trial % 2 == 0, float(rng.choice([0.5, 1.0, 2.0]))
        rows = np.sort(rng.choice(10_000, n, replace=False))
        s = (tn / 2.5).astype(np.float32) if len(tn) else np.zeros(n, np.float32)
        if pair:
            e = (tt / 1.5).astype(np.float32) if len(tt) else np.zeros(n, np.float32)
            s = (s + w * e) / (1 + w)
        for k in (0, 1, 5, 40, 500):
            at, best = bm25_jit.top(tn, 2.5, tt, 1.5, np.float32(w), np.float32(1 + w), pair, rows, k)
            want_rows, want_scores = lexical.top_k(rows, s, k)
            got_rows, got_scores = lexical.top_k(rows[at], best, k)
            assert len(at) == len(want_rows) and got_rows.tolist() == want_rows.tolist(), (trial, k)
            assert got_scores.tobytes() == want_scores.tobytes(), (trial, k)


def test_importing_lexical_does_not_import_numba() -> None:
    code = "import sys, rag.lexical, rag.retrieve; print('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


class _Scored:
    """A lexical index whose scores are given: `top` as rag.lexical's (best first, ties by row)."""

    def __init__(self, scores: np.ndarray) -> None:
        self.full = scores

    def __len__(self) -> int:
        return len(self.full)

    def top(self, query: str, k: int, language: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        return lexical.top_k(np.arange(len(self.full)), self.full, k)


def test_retrieval_reads_bm25_top_rows_as_from_the_array_over_every_row() -> None:
    """`retrieve._top_sparse` (no array over every row) against `_top_scores` + `_top`: the same candidate rows
    and the same BM25 values at any rows, including ties at the candidate cut (which take the array path)."""
    from rag import retrieve

    rng = np.random.default_rng(4)
    for trial in range(200):
        n = int(rng.integers(1, 400))
        scores = (np.round(rng.random(n), int(rng.integers(1, 4))) * (rng.random(n) > 0.4)).astype(np.float32)
        keep, k = int(rng.integers(0, 250)), int(rng.integers(0, 60))
        lex = _Scored(scores)
        full = retrieve._top_scores(lex, "q", "en", keep)
        want = {r for r in retrieve._top(full, None, k) if full[r] > 0} if k else set()
        got = retrieve._top_sparse(lex, "q", "en", keep, k)
        probe = rng.integers(0, n, 50)
        if isinstance(got, retrieve._Sparse):
            assert set(got.best) == want and got.at(probe).tobytes() == full[probe].tobytes(), trial
        else:
            assert got.tobytes() == full.tobytes(), trial


def test_warm_up_compiles_for_each_kind_of_field_and_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    index = lexical.LexicalIndex.build(PASSAGES, LANGUAGES)
    before = index.scores("visa 签证")
    index.warm_up()
    SegmentedLexical([(0, index, np.arange(len(PASSAGES)) % 2 == 0)]).warm_up()
    assert index.scores("visa 签证").tobytes() == before.tobytes()
    monkeypatch.setattr(lexical, "_compiled", lambda: None)
    index.warm_up()  # nothing to compile
