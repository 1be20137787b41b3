"""`newsletter-qa eval xquad` on a tiny fake XQuAD (hash embedder), the fusion it measures, and one real run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rag import xquad
from rag.cli import main
from rag.embed import HashEmbedder
from rag.pipeline import Pipeline
from rag.retrieve import Filters, FusionSettings, fold_editions, search
from rag.settings import Settings
from rag.types import Chunk, Document, Hit, Meta

REAL_XQUAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "xquad"

# 2 articles × 2 paragraphs × 2 questions, per language; the Chinese file is the translation of the English one.
ARTICLES = {
    "en": [
        [
            (
                "The Panthers defense gave up 308 points. Kawann Short led the team in sacks.",
                ["How many points did the Panthers defense give up?", "Who led the team in sacks?"],
            ),
            (
                "Denver beat Pittsburgh in the divisional round. Peyton Manning threw two touchdowns.",
                ["Who did Denver beat in the divisional round?", "How many touchdowns did Manning throw?"],
            ),
        ],
        [
            (
                "Warsaw is the capital of Poland. The Vistula river flows through the city.",
                ["What is the capital of Poland?", "Which river flows through Warsaw?"],
            ),
            (
                "The Palace of Culture and Science is the tallest building in Warsaw. It was finished in 1955.",
                ["What is the tallest building in Warsaw?", "When was the palace finished?"],
            ),
        ],
    ],
    "zh": [
        [
            ("黑豹队的防守只丢了308分。卡万·肖特带领球队擒杀。", ["黑豹队的防守丢了多少分？", "谁带领球队擒杀？"]),
            (
                "丹佛在分区赛中击败了匹兹堡。佩顿·曼宁投出两次达阵。",
                ["丹佛在分区赛中击败了谁？", "曼宁投出了多少次达阵？"],
            ),
        ],
        [
            ("华沙是波兰的首都。维斯瓦河流经这座城市。", ["波兰的首都是哪里？", "哪条河流经华沙？"]),
            ("文化科学宫是华沙最高的建筑。它于1955年完工。", ["华沙最高的建筑是什么？", "文化宫什么时候完工？"]),
        ],
    ],
}


def write_fake(folder: Path, with_sentences: bool = False) -> Path:
    """A SQuAD-format XQuAD (or, `with_sentences`, XQuAD-R) pair of files; answers start each sentence."""
    folder.mkdir(parents=True, exist_ok=True)
    for lang, articles in ARTICLES.items():
        data = []
        for a, paragraphs in enumerate(articles):
            pars = []
            for p, (context, questions) in enumerate(paragraphs):
                cut = context.index("。") + 1 if lang == "zh" else context.index(". ") + 1
                breaks = [[0, cut], [cut + (lang == "en"), len(context)]]
                qas = [
                    {
                        "id": f"q{a}{p}{i}",
                        "question": q,
                        "answers": [{"text": context[b[0] : b[0] + 2], "answer_start": b[0]}],
                    }
                    for i, (q, b) in enumerate(zip(questions, breaks, strict=True))
                ]
                par: dict = {"context": context, "qas": qas}
                if with_sentences:
                    par["sentence_breaks"] = breaks
                    par["sentences"] = [context[s:e] for s, e in breaks]
                pars.append(par)
            data.append({"title": f"article {a}", "paragraphs": pars})
        name = f"{lang}.json" if with_sentences else f"xquad.{lang}.json"
        (folder / name).write_text(json.dumps({"version": "1.1", "data": data}, ensure_ascii=False), "utf-8")
    return folder


@pytest.fixture
def fake(tmp_path: Path) -> Path:
    return write_fake(tmp_path / "xquad")


@pytest.fixture
def hash_settings(tmp_path: Path) -> Settings:
    return Settings(index_root=tmp_path / "index", embedders=("hash",))


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RAG_EMBEDDERS", "hash")
    monkeypatch.setenv("RAG_INDEX_ROOT", str(tmp_path / "index"))
    monkeypatch.delenv("RAG_CONFIG", raising=False)
    return tmp_path / "index"


# ---------------------------------------------------------------- data


def test_load_splits_by_article(fake: Path) -> None:
    dev, test = xquad.load(fake, "dev"), xquad.load(fake, "test")
    assert dev.articles == (0,) and test.articles == (1,)
    assert [p.doc_id for p in dev.paragraphs] == ["en/a00/p0", "en/a00/p1", "zh/a00/p0", "zh/a00/p1"]
    assert {p.pid for p in test.paragraphs} == {"a01/p0", "a01/p1"}
    assert len(dev.questions) == 8 and {q.language for q in dev.questions} == {"en", "zh"}
    en = {q.qid.split("/")[1]: q.pid for q in dev.questions if q.language == "en"}
    zh = {q.qid.split("/")[1]: q.pid for q in dev.questions if q.language == "zh"}
    assert en == zh  # question ids and gold paragraphs are parallel across languages
    assert list(xquad.split_articles(48, "dev")) == list(range(24))
    assert list(xquad.split_articles(48, "test")) == list(range(24, 48))
    with pytest.raises(ValueError, match="split"):
        xquad.split_articles(48, "train")


def test_load_refuses_files_that_are_not_parallel(fake: Path) -> None:
    zh = json.loads((fake / "xquad.zh.json").read_text("utf-8"))
    zh["data"][0]["paragraphs"].pop()
    (fake / "xquad.zh.json").write_text(json.dumps(zh, ensure_ascii=False), "utf-8")
    with pytest.raises(ValueError, match="not parallel"):
        xquad.load(fake, "dev")


def test_documents_are_titled_by_their_own_id(fake: Path) -> None:
    docs = xquad.paragraph_documents(xquad.load(fake, "dev"))
    assert [d.doc_id for d in docs] == [d.meta.title for d in docs]
    assert {d.language for d in docs} == {"en", "zh"} and all(d.content_hash for d in docs)
    again = xquad.paragraph_documents(xquad.load(fake, "dev"))
    assert [d.content_hash for d in docs] == [d.content_hash for d in again]


def test_answer_sentence_and_sentence_documents(tmp_path: Path) -> None:
    split = xquad.load(write_fake(tmp_path / "r", with_sentences=True), "dev", "{lang}.json")
    par = split.paragraphs[0]
    assert xquad.answer_sentence(par, 0) == 0 and xquad.answer_sentence(par, par.sentence_breaks[1][0]) == 1
    with pytest.raises(ValueError):
        xquad.answer_sentence(par, len(par.text) + 5)
    docs = xquad.sentence_documents(split)
    assert docs[0].doc_id == "en/a00/p0/s0" and docs[0].text == "The Panthers defense gave up 308 points."


# ---------------------------------------------------------------- index and retrieval


def test_build_is_incremental(fake: Path, hash_settings: Settings) -> None:
    class Counting(HashEmbedder):
        calls = 0

        def encode_documents(self, texts):  # type: ignore[no-untyped-def]
            Counting.calls += len(texts)
            return super().encode_documents(texts)

    docs = xquad.paragraph_documents(xquad.load(fake, "dev"))
    _, index, first = xquad.build(hash_settings, docs, "xquad-dev", False, {"hash": Counting()})
    assert first.embedded_chunks == first.chunks == len(index.chunks) >= 4 and Counting.calls > 0
    assert "chunks/s" in first.describe()
    Counting.calls = 0
    _, _, second = xquad.build(hash_settings, docs, "xquad-dev", False, {"hash": Counting()})
    assert Counting.calls == 0 and second.embedded_chunks == 0 and "up to date" in second.describe()


def _dev_index(fake: Path, settings: Settings):  # type: ignore[no-untyped-def]
    split = xquad.load(fake, "dev")
    pipe, index, _ = xquad.build(settings, xquad.paragraph_documents(split), "xquad-dev", False)
    vectors, millis = xquad.embed_questions(pipe.embedders, split.questions, bar=False)
    return split, index, vectors, millis


def test_direction_pools(fake: Path, hash_settings: Settings) -> None:
    split, index, vectors, _ = _dev_index(fake, hash_settings)
    fusion = xquad.systems(hash_settings)["hybrid"]
    zh_questions = [q for q in split.questions if q.language == "zh"]
    for pool, expect in ((("en",), {"en"}), (("zh",), {"zh"}), (("en", "zh"), {"en", "zh"})):
        results, millis = xquad.retrieve(index, zh_questions, vectors, fusion, pool, lambda d: d)
        assert len(millis) == len(zh_questions)
        assert {doc.split("/")[0] for r in results.values() for doc in r} == expect


def test_xquad_editions_are_never_folded(fake: Path, hash_settings: Settings) -> None:
    split, index, vectors, _ = _dev_index(fake, hash_settings)
    q = next(q for q in split.questions if q.language == "en")
    hits = search(index, q.text, vectors[q.qid], xquad.systems(hash_settings)["hybrid"], Filters(), 50, "en")
    assert {h.chunk.doc_id.split("/")[0] for h in hits} == {"en", "zh"}
    assert all(not h.also_in for h in hits)
    assert len(fold_editions(index, hits, threshold=-1.0)) == len(hits)  # even at any cosine


def test_both_copies_count_in_mixed_directions(fake: Path, hash_settings: Settings, monkeypatch) -> None:
    split, index, vectors, millis = _dev_index(fake, hash_settings)
    by_id = {c.doc_id: c for c in index.chunks}

    def other_language_first(index, query, qv, fusion, filters, k, prefer_language):  # type: ignore[no-untyped-def]
        q = next(q for q in split.questions if q.text == query)
        other = "zh" if q.language == "en" else "en"
        wrong = next(p for p in ("a00/p0", "a00/p1") if p != q.pid)
        order = [f"{other}/{q.pid}", f"{q.language}/{wrong}", f"{q.language}/{q.pid}"]
        return [Hit(by_id[d], 1.0 - i / 10) for i, d in enumerate(order)]

    monkeypatch.setattr("rag.retrieve.search", other_language_first)
    report = xquad.evaluate_paragraphs(
        index, split, vectors, millis, xquad.systems(hash_settings, ["hybrid"]), ("mixed-en", "mixed-zh"), False
    )
    for direction in ("mixed-en", "mixed-zh"):
        scores = report["systems"]["hybrid"][direction]
        assert scores["R@1"] == scores["MRR@10"] == scores["nDCG@10"] == 1.0  # the translation is a right answer


def test_single_channel_systems(hash_settings: Settings) -> None:
    fusions = xquad.systems(hash_settings)
    assert list(fusions) == ["hash", "bm25", "hybrid"]
    assert dict(fusions["bm25"].weights) == {"hash": 0.0, "bm25": 1.0} and not fusions["bm25"].rerank
    assert fusions["hybrid"].rerank and fusions["hybrid"].weights == hash_settings.weights
    with pytest.raises(ValueError, match="unknown system"):
        xquad.systems(hash_settings, ["e5"])


# ---------------------------------------------------------------- fusion (rag.retrieve)


def _two_language_index(tmp_path: Path, edition_of: str = ""):  # type: ignore[no-untyped-def]
    settings = Settings(index_root=tmp_path / "fi", embedders=("hash",), lexical=False)
    docs = [
        Document(doc_id, text, Meta(title=doc_id, language=lang, edition_of=edition_of), lang, content_hash=doc_id)
        for doc_id, text, lang in (
            ("en/a00/p0", "border management seminar in Beijing", "en"),
            ("zh/a00/p0", "边境管理研讨会在北京举行", "zh"),
        )
    ]
    _, index, _ = xquad.build(settings, docs, "two", False)
    return index


def test_cross_offsets_and_cross_weights_change_only_other_language_scores(tmp_path: Path) -> None:
    index = _two_language_index(tmp_path)
    rows = {c.doc_id: i for i, c in enumerate(index.chunks)}
    # A query vector equally far from both passages: the language of each passage then decides.
    q = index.vectors["hash"][rows["en/a00/p0"]] + index.vectors["hash"][rows["zh/a00/p0"]]
    q = q / np.linalg.norm(q)

    def first(fusion: FusionSettings) -> str:
        return search(index, "border management", {"hash": q}, fusion, Filters(), 2, "en")[0].chunk.doc_id

    plain = FusionSettings(weights={"hash": 1.0}, rerank=False, cross_offsets={})
    assert first(FusionSettings(weights={"hash": 1.0}, rerank=False, cross_offsets={"hash": 0.5})) == "zh/a00/p0"
    assert first(FusionSettings(weights={"hash": 1.0}, rerank=False, cross_offsets={"hash": -0.5})) == "en/a00/p0"
    assert FusionSettings(weights={"bm25": 2.0, "bm25@cross": 0.5}).weight("bm25", cross=True) == 0.5
    assert plain.weight("bm25", cross=True) == 1.0 and plain.weight("e5") == 1.0
    # Within one language, offsets never matter.
    en_only = search(index, "border", {"hash": q}, FusionSettings(weights={"hash": 1.0}), Filters(language="en"), 5)
    assert [h.chunk.doc_id for h in en_only] == ["en/a00/p0"]


def test_fold_editions_groups_editions_of_one_issue(tmp_path: Path) -> None:
    index = _two_language_index(tmp_path, edition_of="issue-1")
    hits = [Hit(c, 1.0 - i) for i, c in enumerate(index.chunks)]
    folded = fold_editions(index, hits, threshold=-1.0, prefer_language="zh")
    assert len(folded) == 1 and folded[0].chunk.language == "zh" and folded[0].also_in == ("en/a00/p0",)
    assert fold_editions(index, hits, threshold=1.01) == hits  # not similar enough: kept apart
    lone = Chunk("x#0", "x", 0, 0, 1, "x", ())
    assert fold_editions(index, [Hit(lone, 1.0)], 0.0) == [Hit(lone, 1.0)]


# ---------------------------------------------------------------- command line


def test_cli_json_shape(fake: Path, cli_env: Path, capsys) -> None:
    assert main(["eval", "xquad", "--data", str(fake), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["systems", "latency_ms"]
    assert list(out["systems"]) == ["hash", "bm25", "hybrid"]
    for directions in out["systems"].values():
        assert list(directions) == ["en->en", "zh->zh", "zh->en", "en->zh", "mixed-en", "mixed-zh"]
        for scores in directions.values():
            assert list(scores) == ["R@1", "R@5", "MRR@10", "nDCG@10"]
            assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert list(out["latency_ms"]) == ["p50", "p95"] and out["latency_ms"]["p50"] > 0
    assert (cli_env / "xquad-dev" / "manifest.json").exists()


def test_cli_table_systems_and_xquad_r(tmp_path: Path, fake: Path, cli_env: Path, capsys) -> None:
    r = write_fake(tmp_path / "xquad-r", with_sentences=True)
    code = main(
        ["eval", "xquad", "--data", str(fake), "--split", "test", "--systems", "bm25,hybrid", "--xquad-r", str(r)]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "test split" in captured.out and "hybrid gain" in captured.out and "over bm25" in captured.out
    assert "mAP@20" in captured.out and "chunks/s" in captured.err
    assert main(["eval", "xquad", "--data", str(fake), "--systems", "bm25", "--json", "--xquad-r", str(r)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["systems", "latency_ms", "xquad_r"] and list(out["xquad_r"]["bm25"]) == ["en", "zh", "all"]
    assert 0.0 <= out["xquad_r"]["bm25"]["all"] <= 1.0


def test_cli_writes_the_eval_reports_and_gates_the_hybrid(tmp_path: Path, fake: Path, cli_env: Path, capsys) -> None:
    r = write_fake(tmp_path / "xquad-r", with_sentences=True)
    out = tmp_path / "report"
    argv = ["eval", "xquad", "--data", str(fake), "--systems", "bm25,hybrid", "--xquad-r", str(r), "--out", str(out)]
    assert main([*argv, "--fail-under", "r@1[en->en]=0"]) == 0
    report = json.loads((out / "report.json").read_text("utf-8"))
    assert list(report["systems"]) == ["hybrid", "bm25"]  # the first system is the baseline and the gated one
    assert set(report["systems"]["hybrid"]) >= {"en->en", "mixed-zh", "xquad-r all"}
    assert "delta" in report["systems"]["bm25"]["en->en"]["R@1"]
    assert (out / "report.md").read_text("utf-8").startswith("# XQuAD paragraph retrieval — dev split")
    assert "<svg" in (out / "report.html").read_text("utf-8")
    capsys.readouterr()
    assert main([*argv, "--fail-under", "R@1[en->en]=1.01"]) == 1
    assert "FAIL R@1[en->en]>=1.01: measured" in capsys.readouterr().err
    assert main([*argv, "--fail-under", "recall=0.5"]) == 2  # unknown metric: a usage error


def test_cli_errors(tmp_path: Path, fake: Path, cli_env: Path, capsys) -> None:
    assert main(["eval", "xquad", "--data", str(tmp_path / "missing")]) == 2
    assert main(["eval", "xquad", "--data", str(fake), "--systems", "e5"]) == 2
    assert main(["eval", "xquad", "--data", str(fake), "--xquad-r", str(fake)]) == 2  # no en.json there
    assert "error:" in capsys.readouterr().err


# ---------------------------------------------------------------- real models


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_XQUAD / "xquad.en.json").exists(), reason="XQuAD not in ../shared/data")
def test_real_hybrid_beats_each_channel(tmp_path: Path) -> None:
    """Dev split, first 3 articles, real USE + e5 + BM25: fusion is never worse than a channel alone."""
    settings = Settings(index_root=tmp_path / "index")
    split = xquad.load(REAL_XQUAD, "dev", limit=3)
    pipe = Pipeline(settings.replace(index_name="xquad-dev-a3"))
    _, index, _ = xquad.build(settings, xquad.paragraph_documents(split), "xquad-dev-a3", False, pipe.embedders)
    vectors, millis = xquad.embed_questions(pipe.embedders, split.questions, bar=False)
    report = xquad.evaluate_paragraphs(
        index, split, vectors, millis, xquad.systems(settings), ("en->en", "zh->en"), bar=False
    )
    table = report["systems"]
    one_question = 1 / sum(q.language == "en" for q in split.questions)
    for channel in ("use", "e5", "bm25"):
        # Across languages fusion wins by a wide margin; within English e5 alone is close (0.965 vs 0.975 on the
        # whole dev split), so there a subset may differ by one question either way.
        assert table["hybrid"]["zh->en"]["R@1"] > table[channel]["zh->en"]["R@1"], (channel, table)
        assert table["hybrid"]["en->en"]["R@1"] >= table[channel]["en->en"]["R@1"] - one_question, (channel, table)
    assert table["hybrid"]["zh->en"]["R@1"] >= 0.85
