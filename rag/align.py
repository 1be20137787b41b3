"""Editions side by side: a cited sentence's counterpart in the edition written in the question's language.

Editions of one issue share `meta.edition_of` (or title and issue). The counterpart is the sentence of the
other edition closest to the cited one by the cross-lingual encoders' summed cosine; it is shown only when
that similarity is high enough to be a translation, never invented.
"""

from __future__ import annotations

import numpy as np

from rag.lang import base
from rag.store import Index
from rag.types import Aligned

MIN_SIMILARITY = 0.6  # mean cosine over the encoders below which two sentences are not taken as translations


def counterpart(index: Index, row: int, language: str) -> Aligned | None:
    """The sentence that says what sentence `row` says, in another edition written in `language`."""
    doc_id, _a, _b = index.sentences[row]
    key = index.edition_keys.get(doc_id, "")
    channels = [ch for ch, v in index.sentence_vectors.items() if len(v)]
    if not key or not channels:
        return None
    best: tuple[float, int, str] | None = None
    for other_id in index.editions.get(key, []):
        other = index.documents[other_id]
        if other_id == doc_id or base(other.language) != base(language):
            continue
        rows = index.doc_sentence_rows.get(other_id, [])
        if not rows:
            continue
        sims = sum(index.sentence_vectors[ch][rows] @ index.sentence_vectors[ch][row] for ch in channels) / len(
            channels
        )
        i = int(np.argmax(sims))
        if best is None or sims[i] > best[0]:
            best = (float(sims[i]), rows[i], other_id)
    if best is None or best[0] < MIN_SIMILARITY:
        return None
    similarity, match, other_id = best
    _d, start, end = index.sentences[match]
    other = index.documents[other_id]
    return Aligned(other_id, other.text[start:end], start, end, other.language, similarity)
