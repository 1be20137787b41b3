"""eval/build_xquad_newsletter.py on a tiny fake XQuAD (exact), and once on the real test split when present."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rag.clean import clean
from rag.ingest import discover, read, read_many
from rag.lang import detect
from rag.qa_eval import load_dataset, locate
from tests import eval_scripts

ROOT = Path(__file__).resolve().parent.parent
REAL_XQUAD = ROOT.parent / "shared" / "data" / "xquad"
UNANSWERABLE = ROOT / "eval" / "datasets" / "xquad-heldout-unanswerable.jsonl"

builder = eval_scripts.load("build_xquad_newsletter")

# Two articles: the first is the dev split and must never appear; the second (the test split) has two
# paragraphs and three questions, the Chinese file being the translation of the English one.
DEV = ("Dev_Article", [("Warsaw is the capital of Poland.", [("dev-1", "What is the capital of Poland?", "Warsaw")])])
TEST = {
    "en": (
        "Old_Bridge",
        [
            (
                "The bridge opened in 1931.  Mr. Smith designed it. It is 500 m long.",
                [("q1", "When did the bridge open?", "1931"), ("q2", "Who designed the bridge?", "Mr. Smith")],
            ),
            (
                "The river floods every spring. Farmers plant rice in May.",
                [("q3", "When do farmers plant rice?", "May")],
            ),
        ],
    ),
    "zh": (
        "Old_Bridge",
        [
            (
                "这座桥于1931年开通。史密斯先生设计了它。桥长500米。",
                [("q1", "这座桥什么时候开通？", "1931年"), ("q2", "谁设计了这座桥？", "史密斯先生")],
            ),
            ("这条河每年春天泛滥。农民在五月种植水稻。", [("q3", "农民什么时候种水稻？", "五月")]),
        ],
    ),
}
# the answer sentence of each question in each edition, as it reads in the cleaned text (two spaces become one)
QUOTES = {
    ("q1", "en"): "The bridge opened in 1931.",
    ("q2", "en"): "Mr. Smith designed it.",
    ("q3", "en"): "Farmers plant rice in May.",
    ("q1", "zh"): "这座桥于1931年开通。",
    ("q2", "zh"): "史密斯先生设计了它。",
    ("q3", "zh"): "农民在五月种植水稻。",
}
DOC = {"en": "xquad-a02-old-bridge", "zh": "xquad-a02-old-bridge.zh"}
UNANSWERABLE_LINES = [
    {"id": "xq-un-en-001", "language": "en", "question": "How much did the bridge cost?"},
    {"id": "xq-un-zh-001", "language": "zh", "question": "这座桥花了多少钱？"},
]


def article(title: str, paragraphs: list[tuple[str, list[tuple[str, str, str]]]]) -> dict[str, Any]:
    return {
        "title": title,
        "paragraphs": [
            {
                "context": context,
                "qas": [
                    {"id": qid, "question": q, "answers": [{"text": a, "answer_start": context.index(a)}]}
                    for qid, q, a in qas
                ],
            }
            for context, qas in paragraphs
        ],
    }


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path]:
    """A fake XQuAD folder and an unanswerable-questions file."""
    data = tmp_path / "xquad"
    data.mkdir()
    for lang in ("en", "zh"):
        dev = article(*DEV)
        payload = {"version": "1.1", "data": [dev, article(*TEST[lang])]}
        (data / f"xquad.{lang}.json").write_text(json.dumps(payload, ensure_ascii=False), "utf-8")
    unanswerable = tmp_path / "unanswerable.jsonl"
    lines = [{**r, "evidence": [], "answer": "", "unanswerable": True} for r in UNANSWERABLE_LINES]
    unanswerable.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), "utf-8")
    return data, unanswerable


def questions(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "questions.jsonl").read_text("utf-8").splitlines()]


def test_sentences_split_english_and_chinese_but_not_abbreviations() -> None:
    text = "He met Mr. Smith in the U.S. Army. Then (he left.) 他来了。她走了！ End"
    assert [text[s:e].strip() for s, e in builder.sentences(text)] == [
        "He met Mr. Smith in the U.S. Army.",
        "Then (he left.)",
        "他来了。",
        "她走了！",
        "End",
    ]


def test_builds_the_test_split_as_a_two_edition_corpus(fake: tuple[Path, Path], tmp_path: Path) -> None:
    data, unanswerable = fake
    out = tmp_path / "out"
    meta = builder.build(data, out, answerable=3, unanswerable=unanswerable)
    assert sorted(p.name for p in (out / "corpus").iterdir()) == [f"{DOC['en']}.md", f"{DOC['zh']}.md"]
    raw = read(out / "corpus" / f"{DOC['zh']}.md")
    assert (raw.meta.title, raw.meta.issue, raw.meta.language, raw.meta.edition_of) == (
        "Old Bridge",
        "2",
        "zh",
        DOC["en"],
    )
    assert clean(read(out / "corpus" / f"{DOC['en']}.md")).text == (
        "The bridge opened in 1931. Mr. Smith designed it. It is 500 m long.\n\n"
        "The river floods every spring. Farmers plant rice in May."
    )
    assert json.loads((out / "dataset.json").read_text("utf-8")) == meta
    assert meta["corpus"] == "corpus" and meta["source"]["split"] == "test" and meta["source"]["articles"] == [2, 2]

    records = questions(out)
    answerable = [r for r in records if not r["unanswerable"]]
    assert {r["id"].split("-")[-1] for r in answerable} == {"q1", "q2", "q3"}  # never dev-1
    assert [r["language"] for r in records] == sorted((r["language"] for r in records), key=["en", "zh"].index)
    editions = []
    for r in answerable:
        qid = r["id"].split("-")[-1]
        lang = r["language"]
        assert r["question"] == next(q for _c, qas in TEST[lang][1] for i, q, _a in qas if i == qid)
        assert r["answer"] == next(a for _c, qas in TEST[lang][1] for i, _q, a in qas if i == qid)
        for e in r["evidence"]:
            edition = "zh" if e["doc_id"] == DOC["zh"] else "en"
            assert e == {"doc_id": DOC[edition], "quote": QUOTES[qid, edition]}
        editions.append((lang, tuple(sorted({"zh" if e["doc_id"] == DOC["zh"] else "en" for e in r["evidence"]}))))
    # the first three steps of the pattern: en against both editions, zh against both, en against zh only
    assert sorted(editions) == [("en", ("en", "zh")), ("en", ("zh",)), ("zh", ("en", "zh"))]
    assert [r["id"] for r in records if r["unanswerable"]] == ["xq-un-en-001", "xq-un-zh-001"]

    dataset = load_dataset(out)  # the format `newsletter-qa eval run` reads
    docs, errors = read_many(discover([dataset.corpus]))
    assert not errors
    documents = {d.doc_id: clean(d) for d in docs}
    for q in dataset.questions:
        locate(q, documents)


def test_build_is_deterministic_and_seeded(fake: tuple[Path, Path], tmp_path: Path) -> None:
    data, unanswerable = fake
    builder.build(data, tmp_path / "a", answerable=2, seed=5, unanswerable=unanswerable)
    builder.build(data, tmp_path / "a", answerable=2, seed=5, unanswerable=unanswerable)  # rebuilt in place
    builder.build(data, tmp_path / "b", answerable=2, seed=5, unanswerable=unanswerable)
    assert (tmp_path / "a" / "questions.jsonl").read_bytes() == (tmp_path / "b" / "questions.jsonl").read_bytes()
    for name in (f"{DOC['en']}.md", f"{DOC['zh']}.md"):
        assert (tmp_path / "a" / "corpus" / name).read_bytes() == (tmp_path / "b" / "corpus" / name).read_bytes()


def test_refuses_too_many_questions_and_a_foreign_folder(fake: tuple[Path, Path], tmp_path: Path) -> None:
    data, unanswerable = fake
    with pytest.raises(ValueError, match="only 3 usable questions"):
        builder.build(data, tmp_path / "out", answerable=4, unanswerable=unanswerable)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", "utf-8")
    assert builder.main(["--data", str(data), "--out", str(foreign), "--unanswerable", str(unanswerable)]) == 2
    assert (foreign / "notes.txt").read_text("utf-8") == "mine"


def test_committed_unanswerable_questions() -> None:
    records = [json.loads(line) for line in UNANSWERABLE.read_text("utf-8").splitlines() if line.strip()]
    assert builder._unanswerable(UNANSWERABLE) == records  # the builder's own checks pass
    languages = Counter(r["language"] for r in records)
    assert len(records) >= 40 and languages["en"] >= 20 and languages["zh"] >= 20, languages
    assert len({r["id"] for r in records}) == len(records)
    assert len({r["question"] for r in records}) == len(records)
    assert all(detect(r["question"]) == r["language"] for r in records)


@pytest.mark.skipif(not REAL_XQUAD.is_dir(), reason=f"no XQuAD in {REAL_XQUAD}")
def test_real_test_split(tmp_path: Path) -> None:
    out = tmp_path / "xquad-heldout"
    assert builder.main(["--data", str(REAL_XQUAD), "--out", str(out)]) == 0
    records = questions(out)
    counts = Counter((r["language"], r["unanswerable"]) for r in records)
    assert counts[("en", False)] == counts[("zh", False)] == builder.ANSWERABLE // 2
    assert counts[("en", True)] + counts[("zh", True)] >= 40
    issues = {read(p).meta.issue for p in (out / "corpus").iterdir()}
    assert issues == {str(n) for n in range(25, 49)}  # the test split only: articles 25-48
    dev_ids = {
        qa["id"]
        for a in json.loads((REAL_XQUAD / "xquad.en.json").read_text("utf-8"))["data"][:24]
        for p in a["paragraphs"]
        for qa in p["qas"]
    }
    assert not any(r["id"].split("-")[-1] in dev_ids for r in records)
    dataset = load_dataset(out)
    docs, errors = read_many(discover([dataset.corpus]))
    assert not errors
    documents = {d.doc_id: clean(d) for d in docs}
    directions = Counter(locate(q, documents).direction for q in dataset.questions)
    assert {"en->en+zh", "zh->en+zh", "en->zh", "zh->en", "en->en", "zh->zh"} <= set(directions), directions
