"""Name checks without scanning the archive: per segment, its documents' text (lowercased, Simplified script) as
one UTF-8 blob, with postings of the keys a term needs (its Latin words; pairs of adjacent Han characters) so
that only the documents holding all of a term's keys are searched for it.

`scope.Corpus` answers the same questions by scanning one string of the whole archive (136 ms per multi-word
English name at 100k chunks); `Mentions` gives the same answers (`tests/test_mentions.py`) from the documents that can
hold the term, and takes the rows of tombstoned documents out.
"""

from __future__ import annotations

import bisect
import mmap
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.lang import to_simplified
from rag.scope import mentioned

_LATIN_WORD = re.compile(r"[a-z0-9]+")
_HAN_LO, _HAN_HI = 0x3400, 0x9FFF  # the Han characters `scope` reads names in
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789")


def han_pairs(text: str) -> np.ndarray:
    """Keys of the pairs of adjacent Han characters in `text` (distinct, sorted)."""
    c = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    han = (c >= _HAN_LO) & (c <= _HAN_HI)
    both = han[:-1] & han[1:]
    return np.unique((c[:-1][both] << 21) | c[1:][both])


@dataclass(frozen=True, eq=False)
class SegmentMentions:
    """One segment's documents for name checks: texts, Latin words and Han pairs, each with its documents."""

    blob: Any  # bytes (or a read-only mmap of them): the documents' texts, lowercased in Simplified script,
    # UTF-8, each followed by "\n"
    starts: np.ndarray  # (n_docs + 1,) byte offset of each document in `blob`
    words: Sequence[str]  # distinct Latin words, sorted
    word_ptr: np.ndarray  # (len(words) + 1,) CSR pointers into word_docs
    word_docs: np.ndarray  # document positions holding each word, ascending
    pairs: np.ndarray  # distinct Han pair keys, sorted
    pair_ptr: np.ndarray
    pair_docs: np.ndarray

    @classmethod
    def of(cls, texts: Iterable[str]) -> SegmentMentions:
        """From the documents' texts (as stored: any case, either script), in the segment's document order."""
        parts: list[bytes] = []
        by_word: dict[str, list[int]] = {}
        pair_keys: list[np.ndarray] = []
        pair_doc: list[np.ndarray] = []
        for i, raw in enumerate(texts):
            text = to_simplified(raw).lower()
            parts.append(text.encode("utf-8") + b"\n")
            for w in set(_LATIN_WORD.findall(text)):
                by_word.setdefault(w, []).append(i)
            keys = han_pairs(text)
            pair_keys.append(keys)
            pair_doc.append(np.full(len(keys), i, np.int32))
        starts = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
        words = sorted(by_word)
        word_ptr = np.cumsum([0] + [len(by_word[w]) for w in words]).astype(np.int64)
        word_docs = np.fromiter((d for w in words for d in by_word[w]), np.int32, int(word_ptr[-1]))
        keys = np.concatenate(pair_keys) if pair_keys else np.zeros(0, np.int64)
        docs = np.concatenate(pair_doc) if pair_doc else np.zeros(0, np.int32)
        order = np.lexsort((docs, keys))
        keys, docs = keys[order], docs[order]
        pairs, first = np.unique(keys, return_index=True)
        pair_ptr = np.append(first, len(keys)).astype(np.int64)
        return cls(b"".join(parts), starts, words, word_ptr, word_docs, pairs, pair_ptr, docs)

    def __len__(self) -> int:
        return len(self.starts) - 1

    _ARRAYS = ("starts", "word_ptr", "word_docs", "pairs", "pair_ptr", "pair_docs")

    def save(self, folder: Path) -> None:
        """Write into `folder` (new): `text.bin`, `words.txt` and one `.npy` per array, fsynced."""
        folder.mkdir()
        _write(folder / "text.bin", bytes(self.blob))
        _write(folder / "words.txt", "\n".join(self.words).encode("utf-8"))
        for name in self._ARRAYS:
            with open(folder / f"{name}.npy", "wb") as fh:
                np.save(fh, getattr(self, name))
                fh.flush()
                os.fsync(fh.fileno())

    @classmethod
    def load(cls, folder: Path) -> SegmentMentions:
        """What `save` wrote: the text and the postings memory-mapped, the words read."""
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in cls._ARRAYS}
        with open(folder / "text.bin", "rb") as fh:
            blob: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
        text = (folder / "words.txt").read_text("utf-8")
        words = text.split("\n") if text else []
        if len(arrays["word_ptr"]) != len(words) + 1 or len(blob) != int(arrays["starts"][-1]):
            raise ValueError(f"{folder.name}: words or text do not match their postings")
        return cls(blob=blob, words=words, **arrays)

    def word_range(self, prefix: str, whole: bool) -> tuple[int, int]:
        """Rows of `words` equal to `prefix` (whole) or starting with it."""
        lo = bisect.bisect_left(self.words, prefix)
        hi = bisect.bisect_right(self.words, prefix) if whole else bisect.bisect_left(self.words, prefix + "{")
        return lo, hi  # "{" follows "z": every word starting with the prefix sorts before prefix + "{"

    def word_postings(self, lo: int, hi: int) -> np.ndarray:
        return self.word_docs[self.word_ptr[lo] : self.word_ptr[hi]]

    def candidates(self, term: str) -> np.ndarray | None:
        """Documents holding every key of `term` (lowercased, Simplified), ascending; None: every document."""
        lists: list[np.ndarray] = []
        if term.isascii():
            for w in set(_LATIN_WORD.findall(term)):
                lo, hi = self.word_range(w, whole=True)
                lists.append(self.word_postings(lo, hi))
        else:
            for key in han_pairs(term):
                i = int(np.searchsorted(self.pairs, key))
                found = i < len(self.pairs) and self.pairs[i] == key
                lists.append(self.pair_docs[self.pair_ptr[i] : self.pair_ptr[i + 1]] if found else self.pair_docs[:0])
        if not lists:
            return None
        lists.sort(key=len)
        out = lists[0]
        for other in lists[1:]:
            if not len(out):
                break
            out = np.intersect1d(out, other, assume_unique=True)
        return out

    def find(self, term: str, dead: np.ndarray | None) -> bool:
        """True when a live document's text holds `term` (lowercased, Simplified): for an ASCII term, as whole
        words (no Latin letter or digit on either side); otherwise anywhere."""
        needle = term.encode("utf-8")
        docs = self.candidates(term)
        boundaries = term.isascii()
        blob, starts = self.blob, self.starts
        if docs is None:  # no key to narrow it down (a term of one Han character): the whole blob, once
            at = 0
            while (at := blob.find(needle, at)) >= 0:
                d = int(np.searchsorted(starts, at, side="right")) - 1
                if (dead is None or not dead[d]) and (not boundaries or _bounded(blob, at, len(needle))):
                    return True
                at += 1
            return False
        for d in docs.tolist():
            if dead is not None and dead[d]:
                continue
            at, end = int(starts[d]), int(starts[d + 1])
            while (at := blob.find(needle, at, end)) >= 0:
                if not boundaries or _bounded(blob, at, len(needle)):
                    return True
                at += 1
        return False


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _bounded(blob: bytes, at: int, n: int) -> bool:
    """No Latin letter or digit right before or right after blob[at : at + n]."""
    return (at == 0 or blob[at - 1] not in _ALNUM) and (at + n >= len(blob) or blob[at + n] not in _ALNUM)


class Mentions:
    """What `scope` asks of the archive (`mentions`, `has_word_starting`, `languages`), answered from the
    segments' `SegmentMentions`, without the documents tombstoned in each."""

    def __init__(self, parts: Sequence[tuple[SegmentMentions, np.ndarray | None]], languages: Iterable[str]) -> None:
        self.parts = list(parts)  # (segment mentions, dead: bool per document | None)
        self.languages = frozenset("zh" if x.startswith("zh") else "en" for x in languages)

    def mentions(self, term: str) -> bool:
        return mentioned(self, term)

    def has_text(self, term: str) -> bool:
        """`term` (lowercased, Simplified) in a live document: whole words for ASCII, anywhere otherwise."""
        return any(m.find(term, dead) for m, dead in self.parts)

    def has_word_starting(self, prefix: str, whole: bool = False) -> bool:
        """True when a live document has a Latin word starting with `prefix` (or, with `whole`, equal to it)."""
        for m, dead in self.parts:
            lo, hi = m.word_range(prefix, whole)
            if lo < hi and (dead is None or not dead[m.word_postings(lo, hi)].all()):
                return True
        return False
