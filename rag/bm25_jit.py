"""BM25 compiled with numba: one loop per posting, for `rag.lexical` (its numpy scorer is the reference).

At a million passages nearly every query term is in a large share of them, and the numpy scorer passes over a
question's postings about eight times (one array operation each) plus whole-segment arrays per question. These
loops do the same float operations in the same order, once per posting, so the scores are bit-identical
(`tests/test_bm25_jit.py`). Numba is imported only when `rag.lexical` first scores (not at import), and each
kernel compiles on its first call (cached beside this file, or in numba's user-wide cache when this folder is
read-only; uncached when neither can be written).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np


def _jit(fn: Any) -> Any:
    """Compiled lazily, nogil (threads of the server score side by side), numpy's float semantics: x / 0 is inf
    or nan as in numpy, no Python division check."""
    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available" (no writable cache folder)
        return numba.njit(cache=False, nogil=True, error_model="numpy")(fn)


def _gather_py(field, terms, live, has_live, n_part):  # type: ignore[no-untyped-def]
    """Each concept's live document frequency, and the summed counts of the concepts of several terms: (df per
    concept, rows, counts, offsets: concept i's are [offsets[i], offsets[i + 1]), none for a single term).
    `field` is a field's CSC (indptr, indices, data), `terms` the query's `_Field.columns`.

    As `_Field.postings`: a term's counts times its weight in float32; a concept's terms summed per passage in
    float64 in term order, then rounded to float32. Rows come in first-seen order (the scorer adds each row once
    per concept, so order does not matter). A single term's postings are read where they are, by `accumulate`.
    """
    indptr, indices, data = field
    cols, weights, cptr = terms
    nq = len(cptr) - 1
    m = 0
    for qi in range(nq):
        if cptr[qi + 1] - cptr[qi] > 1:
            for t in range(cptr[qi], cptr[qi + 1]):
                m += indptr[cols[t] + 1] - indptr[cols[t]]
    rows = np.empty(m, np.int32)
    vals = np.empty(m, np.float32)
    acc = np.empty(m, np.float64)
    slot = np.zeros(n_part if m else 0, np.int32)  # row → 1 + its position in `rows` while its concept is summed
    df = np.zeros(nq, np.int64)
    ptr = np.zeros(nq + 1, np.int64)
    pos = 0
    for qi in range(nq):
        start = pos
        a, z = cptr[qi], cptr[qi + 1]
        if z - a == 1:
            lo, hi = indptr[cols[a]], indptr[cols[a] + 1]
            if has_live:
                for j in range(lo, hi):
                    df[qi] += live[indices[j]]
            else:
                df[qi] = hi - lo
        elif z - a > 1:
            for t in range(a, z):
                c, w = cols[t], weights[t]
                for j in range(indptr[c], indptr[c + 1]):
                    r = indices[j]
                    if has_live and not live[r]:
                        continue
                    v = np.float64(data[j] * w)
                    s = slot[r]
                    if s == 0:
                        rows[pos] = r
                        acc[pos] = 0.0 + v
                        pos += 1
                        slot[r] = pos
                    else:
                        acc[s - 1] += v
            for i in range(start, pos):
                vals[i] = np.float32(acc[i])
                slot[rows[i]] = 0
            df[qi] = pos - start
        ptr[qi + 1] = pos
    return df, rows[:pos], vals[:pos], ptr


def _accumulate_py(field, terms, live, has_live, gathered, idf, length, bm25, total):  # type: ignore[no-untyped-def]
    """Add each concept's BM25 to `total` (float64 per passage), concept by concept in query order:
    idf * v * (k1 + 1) / (v + norm), with norm = k1 * (1 - b + b * length / avg) at the posting's row only.
    `gathered` is `gather`'s result (a concept of one term is read from the field's own postings); `bm25` is
    (k1, b, mean passage length)."""
    indptr, indices, data = field
    cols, weights, cptr = terms
    _df, rows, vals, ptr = gathered
    k1, b, avg = bm25
    kp1 = k1 + 1
    one_b = 1 - b
    for qi in range(len(cptr) - 1):
        f = idf[qi]
        if cptr[qi + 1] - cptr[qi] == 1:
            w = weights[cptr[qi]]
            for j in range(indptr[cols[cptr[qi]]], indptr[cols[cptr[qi]] + 1]):
                r = indices[j]
                if has_live and not live[r]:
                    continue
                v = np.float64(data[j] * w)
                norm = k1 * (one_b + b * np.float64(length[r]) / avg)
                total[r] += v * f * kp1 / (v + norm)
        else:
            for j in range(ptr[qi], ptr[qi + 1]):
                r = rows[j]
                v = np.float64(vals[j])
                norm = k1 * (one_b + b * np.float64(length[r]) / avg)
                total[r] += v * f * kp1 / (v + norm)


def _final(tn, sn, tt, st, w, d, pair, i):  # type: ignore[no-untyped-def]
    """Passage i's float32 score: its native total over the self-score (0 when `tn` is empty: no match in the
    part), or for a `pair`, (s + w * e) / d with the translated field's e, in float32 as `part_scores` mixes
    them (w the translated field's weight, d = 1 + w, both float32)."""
    s = np.float32(tn[i] / sn) if len(tn) else np.float32(0)
    if not pair:
        return s
    e = np.float32(tt[i] / st) if len(tt) else np.float32(0)
    return (s + w * e) / d


def _finish_py(tn, sn, tt, st, w, d, pair, n):  # type: ignore[no-untyped-def]
    """Every passage's float32 score (see `_final`)."""
    out = np.empty(n, np.float32)
    for i in range(n):
        out[i] = final(tn, sn, tt, st, w, d, pair, i)
    return out


def _top_py(tn, sn, tt, st, w, d, pair, rows, k):  # type: ignore[no-untyped-def]
    """Positions of the k best positive scores (see `_final`) and those scores, in no order: a min-heap on
    (score, -row), so ties go to the lower row as in `rag.lexical.top_k`. No array of scores is made.

    Once the heap is full, a row whose sums cannot reach its worst score is passed over without computing its
    score: the bound (sums times reciprocals, 2**-16 below the worst) is far outside float rounding, and every
    row that passes is scored exactly."""
    n = len(rows)
    hs = np.empty(max(k, 0), np.float32)
    hi = np.empty(max(k, 0), np.int64)
    size = 0
    has_n, has_t = len(tn) > 0, pair and len(tt) > 0
    cn = 1.0 / sn if has_n else 0.0  # a row's score is at most (tn * cn + tt * ct) / d, less rounding
    ct = np.float64(w) / st if has_t else 0.0
    dd = np.float64(d) if pair else 1.0
    bar = 0.0  # sums below this cannot reach the heap's worst score
    prune = not pair or w >= 0  # (the bound assumes the translated field adds, not subtracts)
    for i in range(n):
        x = (tn[i] * cn if has_n else 0.0) + (tt[i] * ct if has_t else 0.0)
        if not x > bar:
            continue
        s = final(tn, sn, tt, st, w, d, pair, i)
        if not s > 0:
            continue
        if size < k:  # sift up
            j = size
            size += 1
            while j > 0:
                p = (j - 1) // 2
                if hs[p] < s or (hs[p] == s and rows[hi[p]] > rows[i]):
                    break
                hs[j], hi[j] = hs[p], hi[p]
                j = p
            hs[j], hi[j] = s, i
        elif k > 0 and (s > hs[0] or (s == hs[0] and rows[i] < rows[hi[0]])):  # replace the worst, sift down
            j = 0
            while True:
                c = 2 * j + 1
                if c >= size:
                    break
                if c + 1 < size and (hs[c + 1] < hs[c] or (hs[c + 1] == hs[c] and rows[hi[c + 1]] > rows[hi[c]])):
                    c += 1
                if s < hs[c] or (s == hs[c] and rows[i] > rows[hi[c]]):
                    break
                hs[j], hi[j] = hs[c], hi[c]
                j = c
            hs[j], hi[j] = s, i
        if size == k and k > 0 and prune:
            bar = np.float64(hs[0]) * dd * (1 - 2.0**-16)
    return hi[:size], hs[:size]


final = _jit(_final)
gather = _jit(_gather_py)
accumulate = _jit(_accumulate_py)
finish = _jit(_finish_py)
top = _jit(_top_py)
