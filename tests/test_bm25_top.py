"""BM25 top-k without an array over every row (rag.lexical: part_scores, top; rag.retrieve._top_scores).

The reference is the previous scorer, kept here verbatim in spirit: every concept's postings merged by a sort, one
bincount over all rows. Scores must be equal bit for bit, including concept terms (a word's translations summed as
one term) and tombstoned rows.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from rag import retrieve
from rag.lexical import LexicalIndex, SegmentedLexical, Settings, _Field, _field_scores, top_k
from tests.test_segments import LANGUAGES as SEGMENT_LANGUAGES
from tests.test_segments import PASSAGES as SEGMENT_PASSAGES

S = Settings()


def _field(rng: np.random.Generator, rows: int, vocab: int) -> _Field:
    tf = sparse.random(rows, vocab, density=0.3, random_state=rng, dtype=np.float32, format="csc")
    tf.data = np.ceil(tf.data * 4).astype(np.float32)  # counts 1..4 (ties between rows are common)
    tf.sort_indices()
    return _Field({f"t{i}": i for i in range(vocab)}, tf)


def _reference(parts: list, query: list, size: int) -> np.ndarray:
    """The scorer before top-k: np.unique per concept, one bincount over `size` rows."""
    n, total_len, found = 0, 0.0, []
    for f, rows, live in parts:
        n += len(rows) if live is None else int(live.sum())
        total_len += float(np.sum(f.length)) if live is None else float(np.sum(f.length[live]))
        rr, cc, vv = [], [], []
        for qi, c in enumerate(query):
            got = []
            for t, w in c:
                i = f.vocab.get(t)
                lo, hi = (int(f.tf.indptr[i]), int(f.tf.indptr[i + 1])) if i is not None else (0, 0)
                if hi > lo:
                    got.append((np.asarray(f.tf.indices[lo:hi], np.int64), np.asarray(f.tf.data[lo:hi]) * w))
            if not got:
                continue
            if len(got) == 1:
                r, v = got[0]
            else:
                r, where = np.unique(np.concatenate([x for x, _ in got]), return_inverse=True)
                v = np.bincount(where, weights=np.concatenate([y for _, y in got]), minlength=len(r))
            rr.append(r)
            vv.append(np.asarray(v, np.float32))
            cc.append(np.full(len(r), qi))
        if rr:
            r, c, v = np.concatenate(rr), np.concatenate(cc), np.concatenate(vv)
            if live is not None:
                r, c, v = r[live[r]], c[live[r]], v[live[r]]
            found.append((f, rows, r, c, v))
    if not query or not found or n == 0:
        return np.zeros(size, np.float32)
    df = np.zeros(len(query), np.int64)
    for *_, c, _v in found:
        df += np.bincount(c, minlength=len(query))
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    avg = max(total_len / n, 1e-9)
    rows_, vals = [], []
    for f, rows, r, c, v in found:
        norm = S.k1 * (1 - S.b + S.b * np.asarray(f.length[r], np.float64) / avg)
        vals.append(idf[c] * v * (S.k1 + 1) / (v + norm))
        rows_.append(rows[r])
    total = np.bincount(np.concatenate(rows_), weights=np.concatenate(vals), minlength=size)
    return (total / float(idf.sum())).astype(np.float32)


def test_field_scores_equal_the_sorting_scorer_with_concepts_and_tombstones() -> None:
    rng = np.random.default_rng(3)
    for trial in range(20):
        sizes = [int(x) for x in rng.integers(1, 40, 3)]
        fields = [_field(rng, n, 12) for n in sizes]
        offsets = np.cumsum([0, *sizes])
        parts = []
        for f, o, n in zip(fields, offsets, sizes, strict=False):
            live = None if trial % 2 else rng.random(n) > 0.3
            parts.append((f, np.arange(n) + o, live))
        query = [
            (("t0", 1.0),),
            (("t1", 1.0), ("t2", 0.5), ("t3", 0.25)),  # one concept: a word and its translations
            (("t4", 0.7), ("nope", 1.0)),
            (("t5", 1.0), ("t1", 0.3)),  # terms shared between concepts
        ][: 1 + trial % 4]
        want = _reference(parts, query, int(offsets[-1]))
        got = np.zeros(int(offsets[-1]), np.float32)
        for (_f, rows, _live), s in zip(parts, _field_scores(parts, query, S), strict=True):
            if s is not None:
                got[rows] = s
        assert got.tobytes() == want.tobytes()


def test_top_k_is_the_exhaustive_order_with_ties_by_row() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(300), 1).astype(np.float32) * (rng.random(300) > 0.3)  # ties and zeros
    rows = np.arange(1000, 1300)
    for k in (0, 1, 7, 50, 250, 1000):
        pos = np.flatnonzero(scores > 0)
        ref = pos[np.lexsort((pos, -scores[pos]))][:k]
        got_rows, got_scores = top_k(rows, scores, k)
        assert got_rows.tolist() == (ref + 1000).tolist()
        assert got_scores.tolist() == scores[ref].tolist()


PASSAGES = [  # test_segments' passages, and two that share their words
    *SEGMENT_PASSAGES,
    "Experts on border management met in Hangzhou; the seminar discussed visas.",
    "研讨会讨论了签证和边境管理。",
]
LANGUAGES = [*SEGMENT_LANGUAGES, "en", "zh"]
QUERIES = ["Where was the seminar on migrant integration held?", "边境管理 签证", "visa ports travellers", "", "的"]


def test_segmented_top_and_search_equal_the_full_scores_across_languages_and_tombstones() -> None:
    first, second = LexicalIndex.build(PASSAGES[:5], LANGUAGES[:5]), LexicalIndex.build(PASSAGES[5:], LANGUAGES[5:])
    for live in (None, np.array([True, False, True, True, False])):
        split = SegmentedLexical([(0, first, live), (5, second, None)])
        for q in QUERIES:
            for language in (None, "en", "zh"):
                full = split.scores(q, language)
                pos = np.flatnonzero(full > 0)
                for k in (1, 3, 50):
                    ref = pos[np.lexsort((pos, -full[pos]))][:k]
                    rows, scores = split.top(q, k, language)
                    assert rows.tolist() == ref.tolist() and scores.tolist() == full[ref].tolist()
                    assert split.search(q, k, language) == [(int(r), float(full[r])) for r in ref]
                    kept = retrieve._top_scores(split, q, language, k)  # type: ignore[arg-type]
                    assert kept.tobytes() == retrieve._keep_top(full, k).tobytes()
