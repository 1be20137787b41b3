"""eval/xquad_fusion_grid.py: its replay of the fusion equals `rag.retrieve.search`; the token-pair signal, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rag.settings import Settings
from tests import eval_scripts
from tests.test_xquad import write_fake

grid = eval_scripts.load("xquad_fusion_grid")


def test_replay_matches_search(tmp_path: Path) -> None:
    settings = Settings(index_root=tmp_path / "index", embedders=("hash",))
    cache = grid.channel_scores(settings, write_fake(tmp_path / "xquad"), "dev", {"k0.6b0.5": (0.6, 0.5)})
    assert set(cache["scores"]["en/q000"]) >= {
        "hash",
        "hash_sentence",
        "bm25",
        "k0.6b0.5",
        "pairs1",
        "pairs3",
        "zhbigram",
    }
    assert grid.check(cache, settings) == 0
    h, directions, articles = grid.hits(cache, grid.Config(), ("en->en", "zh->en"))
    assert len(h) == 8 and list(directions) == [0] * 4 + [1] * 4 and set(articles) == {0}
    by_direction = grid.evaluate(cache, grid.Config(), directions=("en->en", "zh->en"))
    assert [by_direction[d][0] for d in ("en->en", "zh->en")] == [h[:4].mean(), h[4:].mean()]


def test_token_pairs_and_their_scores() -> None:
    assert grid._pairs(["a", "b", "c", "a"], 1) == {("a", "b"), ("b", "c"), ("a", "c")}
    assert grid._pairs(["a", "b", "c"], 2) == {("a", "b"), ("b", "c"), ("a", "c")}
    sets = [{("a", "b")}, {("a", "b"), ("b", "c")}, {("a", "b")}, set()]
    scores = grid._pair_scores({("a", "b"), ("b", "c")}, sets, ["en", "en", "zh", "en"], "en")
    # 3 English chunks: idf(ab) = log1p(1.5 / 2.5), idf(bc) = log1p(2.5 / 1.5); the Chinese chunk scores 0
    ab, bc = np.log1p(1.5 / 2.5), np.log1p(2.5 / 1.5)
    np.testing.assert_allclose(scores, [ab / (ab + bc), 1.0, 0.0, 0.0])


def test_chinese_character_bigrams() -> None:
    assert grid._zh_bigrams("超级碗 50 届，华") == ["超级", "级碗", "50", "届", "华"]
    bags = [grid._zh_bigrams("超级碗"), grid._zh_bigrams("碗"), ["x"]]
    scores = grid._zh_bigram_bm25("超级", bags, ["zh", "zh", "en"])
    assert scores[0] > 0 and scores[1] == scores[2] == 0.0
