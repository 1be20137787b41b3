"""Our BM25 as sparse vectors, for a search engine that scores sparse vectors by dot product (Milvus).

A passage's vector holds its BM25 document weights, per field of `rag.lexical.LexicalIndex`: its own tokens
(namespace `n|<lang>`) and its CC-CEDICT translation (`t|<lang>`); a question's vector holds the concepts
`rag.lexical.concepts` reads in it, per target language, at their idf over the query's self-score. Their dot
product reproduces `LexicalIndex.scores` (cross-language matching included) up to two approximations: a
concept's document frequency is the sum of its matched terms' (the bound of their union, which needs postings),
and translations of one concept saturate one by one (tests/test_milvus.py compares the two). On the XQuAD dev
split, BM25 alone, the sum kept cross-language R@1 closer to the folder's than the most frequent term's did
(zh->en 0.804 / en->zh 0.818 against 0.812 / 0.816; the largest term's df gave 0.799 / 0.804).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rag.lang import base, detect

LANGUAGES = ("en", "zh")


def term_id(namespace: str, term: str) -> int:
    """A sparse dimension for an index term: 32 bits of its hash (Milvus takes ids below 2**32 - 1)."""
    h = int.from_bytes(hashlib.blake2b(f"{namespace}|{term}".encode(), digest_size=4).digest(), "little")
    return h % (2**32 - 1)


def _csr(field: Any) -> Any:
    return field.tf.tocsr()


def document_sparse(lexical: Any) -> list[dict[int, float]]:
    """Each passage's BM25 document weights as a sparse vector, by index row.

    Weight of a term = tf·(k1+1) / (tf + k1·(1 - b + b·length/mean length)) in its field (the passage's own
    tokens, namespace `n|<lang>`; its CC-CEDICT translation, `t|<lang>`); idf is on the query side
    (`query_sparse`), so a passage's vector does not change when others are added.
    """
    s = lexical.settings
    out: list[dict[int, float]] = [{} for _ in range(len(lexical))]
    langs = np.array(lexical.languages)
    for lang in LANGUAGES:
        rows = np.flatnonzero(langs == lang)
        for kind, fields in (("n", lexical.native), ("t", lexical.translated)):
            f = fields.get(lang)
            if f is None or not len(rows):
                continue
            vocab = sorted(f.vocab, key=f.vocab.__getitem__)
            ids = np.array([term_id(f"{kind}|{lang}", t) for t in vocab], np.int64)
            length = f.length
            norm = s.k1 * (1 - s.b + s.b * length / max(float(length.mean()), 1e-9))
            tf = _csr(f)
            for p, row in enumerate(rows):
                a, b = tf.indptr[p], tf.indptr[p + 1]
                counts = tf.data[a:b].astype(np.float64)
                weights = counts * (s.k1 + 1) / (counts + norm[p])
                vec = out[int(row)]
                for i, w in zip(ids[tf.indices[a:b]], weights, strict=True):
                    if w > 0:
                        vec[int(i)] = vec.get(int(i), 0.0) + float(w)
    return out


def _field_query(f: Any, found: Sequence[Sequence[tuple[str, float]]], settings: Any, namespace: str, scale: float):
    """One field's share of the query vector: each matched term at its concept's idf / the query's self-score.

    As `rag.lexical._Field.score`, but term by term: a concept's document frequency is the sum of its matched
    terms' (a bound on their union's, which needs postings), and translations saturate one by one.
    """
    n = f.tf.shape[0]
    out: dict[int, float] = defaultdict(float)
    if not n or not found:
        return out
    df = np.diff(f.tf.indptr)
    matched: list[tuple[float, list[tuple[str, float]]]] = []
    for concept in found:
        hits = [(t, w) for t, w in concept if t in f.vocab and w > 0]
        if hits:
            d = min(n, sum(int(df[f.vocab[t]]) for t, _ in hits))
            matched.append((float(np.log1p((n - d + 0.5) / (d + 0.5))), hits))
    if not matched:
        return out
    self_score = sum(i for i, _ in matched) + (len(found) - len(matched)) * float(np.log1p((n + 0.5) / 0.5))
    for idf, hits in matched:
        for t, w in hits:
            out[term_id(namespace, t)] += scale * w * idf / self_score
    return out


def query_sparse(lexical: Any, query: str, language: str = "") -> dict[int, float]:
    """The question as a sparse vector over `document_sparse`'s dimensions: its dot product with a passage
    approximates `LexicalIndex.scores` (the same concepts, CC-CEDICT expansion and cross-language mixing)."""
    from rag.lexical import concepts

    s = lexical.settings
    source = base(language or detect(query))
    out: dict[int, float] = defaultdict(float)
    present = set(lexical.languages)
    for target in LANGUAGES:
        native = lexical.native.get(target)
        if target not in present or native is None:
            continue
        cross = target != source and bool(lexical.translated)
        own = 1 / (1 + s.doc_weight) if cross else 1.0
        for k, v in _field_query(native, concepts(query, target, s), s, f"n|{target}", own).items():
            out[k] += v
        if cross and target in lexical.translated:
            part = _field_query(
                lexical.translated[target],
                concepts(query, source, s),
                s,
                f"t|{target}",
                s.doc_weight / (1 + s.doc_weight),
            )
            for k, v in part.items():
                out[k] += v
    return {k: float(v) for k, v in out.items() if v > 0}


def sparse_dot(q: Mapping[int, float], d: Mapping[int, float]) -> float:
    if len(d) < len(q):
        q, d = d, q
    return float(sum(v * d.get(k, 0.0) for k, v in q.items()))
