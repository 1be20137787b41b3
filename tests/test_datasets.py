"""The evaluation datasets in eval/datasets/: format, counts and verbatim evidence (fast, no models)."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from rag.clean import clean
from rag.ingest import discover, read_many
from rag.lang import base as lang_base
from rag.lang import detect, to_simplified

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT / "eval" / "datasets"
DEV, HELDOUT, PARAPHRASE = "mmsp-dev", "mmsp-heldout", "mmsp-paraphrase"
ALL = [DEV, HELDOUT, PARAPHRASE]
# other newsletters, each in its own corpus/ folder
OWN_CORPUS = {"library-heldout": "lib-", "transit-dev": "tr-", "coop-dev": "co-", "river-dev": "rv-"}
LANGUAGES = {"en", "zh", "zh-hant"}
FIELDS = {"id": str, "language": str, "question": str, "evidence": list, "answer": str, "unanswerable": bool}
ZH_EDITION = ".zh"  # doc_id suffix of the Chinese edition


def load(name: str) -> list[dict[str, Any]]:
    lines = (DATASETS / name / "questions.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def meta(name: str) -> dict[str, Any]:
    return json.loads((DATASETS / name / "dataset.json").read_text("utf-8"))


@cache
def corpus_texts(folder: Path) -> dict[str, str]:
    docs, errors = read_many(discover([folder]))
    assert not errors, errors
    return {doc.doc_id: clean(doc).text for doc in docs}


def texts(name: str) -> dict[str, str]:
    return corpus_texts((DATASETS / name / meta(name)["corpus"]).resolve())


def edition(doc_id: str) -> str:
    return "zh" if doc_id.endswith(ZH_EDITION) else "en"


def editions(record: dict[str, Any]) -> frozenset[str]:
    return frozenset(edition(e["doc_id"]) for e in record["evidence"])


@pytest.mark.parametrize("name", ALL)
def test_dataset_json(name: str) -> None:
    m = meta(name)
    assert m["name"] == name
    assert isinstance(m["description"], str) and m["description"].strip()
    folder = (DATASETS / name / m["corpus"]).resolve()
    assert folder.is_dir(), folder
    assert folder == (ROOT / "data" / "newsletters").resolve()


@pytest.mark.parametrize("name", ALL + list(OWN_CORPUS))
def test_fields_and_types(name: str) -> None:
    for r in load(name):
        assert set(r) >= set(FIELDS), r.get("id")
        for field, kind in FIELDS.items():
            assert isinstance(r[field], kind), (r["id"], field)
        assert r["language"] in LANGUAGES, r["id"]
        assert r["question"].strip(), r["id"]
        for e in r["evidence"]:
            assert set(e) == {"doc_id", "quote"}, r["id"]
            assert isinstance(e["doc_id"], str) and isinstance(e["quote"], str), r["id"]
            assert e["quote"].strip() == e["quote"] and e["quote"], r["id"]
        assert len({(e["doc_id"], e["quote"]) for e in r["evidence"]}) == len(r["evidence"]), r["id"]


@pytest.mark.parametrize("name", ALL + list(OWN_CORPUS))
def test_unique_ids_and_prefixes(name: str) -> None:
    records = load(name)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    prefix = {"en": "en-", "zh": "zh-", "zh-hant": "zht-"}
    for r in records:
        if name == PARAPHRASE:  # pp-<dev id><a|b|c>: a Traditional rewording of zh-012 is pp-zh-012c
            assert re.fullmatch(rf"pp-{re.escape(r['paraphrase_of'])}[abc]", r["id"]), r["id"]
            continue
        if name in OWN_CORPUS:  # <corpus prefix><en|zh>: a Traditional question is zh-… or zht-…
            expected = OWN_CORPUS[name] + r["language"].replace("zh-hant", "zh")
        else:
            expected = ("ho-" if name == HELDOUT else "") + prefix[r["language"]]
        assert r["id"].startswith(expected), r["id"]
    questions = [r["question"] for r in records]
    assert len(questions) == len(set(questions)), "duplicate question text"


@pytest.mark.parametrize("name", ALL + list(OWN_CORPUS))
def test_unanswerable_iff_no_evidence(name: str) -> None:
    for r in load(name):
        assert r["unanswerable"] == (not r["evidence"]), r["id"]
        assert (r["answer"] == "") == r["unanswerable"], r["id"]


@pytest.mark.parametrize("name", ALL + list(OWN_CORPUS))
def test_quotes_verbatim_in_cleaned_text(name: str) -> None:
    docs = texts(name)
    for r in load(name):
        for e in r["evidence"]:
            assert e["doc_id"] in docs, (r["id"], e["doc_id"])
            assert e["quote"] in docs[e["doc_id"]], (r["id"], e["quote"])


@pytest.mark.parametrize("name", ALL + list(OWN_CORPUS))
def test_question_language_matches_detection(name: str) -> None:
    for r in load(name):
        assert detect(r["question"]) == r["language"], (r["id"], r["question"])


def test_dev_counts() -> None:
    records = load(DEV)
    langs = Counter(r["language"] for r in records)
    unanswerable = Counter(r["language"] for r in records if r["unanswerable"])
    assert len(records) >= 130
    assert langs["en"] >= 55 and langs["zh"] >= 55 and langs["zh-hant"] >= 12
    assert sum(unanswerable.values()) >= 24
    assert all(unanswerable[lang] > 0 for lang in LANGUAGES), unanswerable  # spread over the three languages
    # Both directions across editions are exercised, but most questions cite both editions.
    answerable = [r for r in records if not r["unanswerable"]]
    for lang, other in (("en", "zh"), ("zh", "en")):
        mine = [r for r in answerable if r["language"] == lang]
        cross = sum(editions(r) == {other} for r in mine)
        both = sum(editions(r) == {"en", "zh"} for r in mine)
        assert 0.15 * len(mine) <= cross <= 0.35 * len(mine), (lang, cross, len(mine))
        assert both > len(mine) / 2, (lang, both)


def test_heldout_counts_and_directions() -> None:
    everything = load(HELDOUT)
    unanswerable = Counter(r["language"] for r in everything if r["unanswerable"])
    assert unanswerable == {"en": 7, "zh": 7, "zh-hant": 2}
    records = [r for r in everything if not r["unanswerable"]]
    langs = Counter(r["language"] for r in records)
    assert langs == {"en": 10, "zh": 10}
    zh_to_en = sum(r["language"] == "zh" and editions(r) == {"en"} for r in records)
    en_to_zh = sum(r["language"] == "en" and editions(r) == {"zh"} for r in records)
    assert zh_to_en >= 4 and en_to_zh >= 2


def test_heldout_questions_differ_from_dev() -> None:
    def norm(q: str) -> str:
        return " ".join(q.casefold().split())

    dev = {norm(r["question"]) for r in load(DEV)}
    clashes = [r["id"] for r in load(HELDOUT) if norm(r["question"]) in dev]
    assert not clashes


def test_paraphrases_keep_their_originals_evidence_and_answerability() -> None:
    dev = {r["id"]: r for r in load(DEV)}
    records = load(PARAPHRASE)
    originals = Counter(r["paraphrase_of"] for r in records)
    assert len(originals) == 40 and set(originals.values()) == {3}, originals
    assert set(originals) <= set(dev), set(originals) - set(dev)
    assert sum(dev[o]["unanswerable"] for o in originals) >= 8
    assert {dev[o]["language"] for o in originals} == LANGUAGES
    for r in records:
        o = dev[r["paraphrase_of"]]
        assert r["evidence"] == o["evidence"] and r["unanswerable"] == o["unanswerable"], r["id"]
        assert to_simplified(r["answer"]) == to_simplified(o["answer"]), r["id"]
        assert lang_base(r["language"]) == lang_base(o["language"]), r["id"]  # zh <-> zh-hant is a paraphrase


def test_paraphrases_differ_from_every_dev_question() -> None:
    def norm(q: str) -> str:
        return to_simplified(" ".join(q.casefold().split()))

    dev = {norm(r["question"]) for r in load(DEV)}
    clashes = [r["id"] for r in load(PARAPHRASE) if norm(r["question"]) in dev]
    assert not clashes


def test_paraphrase_counts() -> None:
    records = load(PARAPHRASE)
    langs = Counter(r["language"] for r in records)
    assert langs == {"en": 54, "zh": 30, "zh-hant": 36}
    assert Counter(r["language"] for r in records if r["unanswerable"]) == {"en": 9, "zh": 6, "zh-hant": 9}


@pytest.mark.parametrize("name", list(OWN_CORPUS))
def test_own_corpus_datasets(name: str) -> None:
    m = meta(name)
    assert m["name"] == name and m["description"].strip()
    assert (DATASETS / name / m["corpus"]).resolve() == (DATASETS / name / "corpus").resolve()
    records = load(name)  # ids and question texts: test_unique_ids_and_prefixes
    assert {r["language"] for r in records} == LANGUAGES
    assert 0 < sum(r["unanswerable"] for r in records) < len(records)
