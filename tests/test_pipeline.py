"""End-to-end pipeline on the hash embedder: incremental updates, answers, citations, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.embed import HashEmbedder
from rag.pipeline import Pipeline, QuestionError
from rag.retrieve import Filters
from rag.store import IndexNotFound, open_index
from tests.contract import ANSWER_KEYS


class Counting(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.embedded: list[str] = []

    def encode_documents(self, texts):  # type: ignore[no-untyped-def]
        self.embedded.extend(texts)
        return super().encode_documents(texts)


def test_update_reembeds_only_what_changed(settings, corpus: Path) -> None:
    emb = Counting()
    pipe = Pipeline(settings, {"hash": emb})
    first = pipe.ingest([corpus])
    assert sorted(first.added) == ["news-en", "news-zh"] and first.embedded_chunks == first.chunks
    emb.embedded.clear()

    again = pipe.ingest([corpus])
    assert sorted(again.unchanged) == ["news-en", "news-zh"] and emb.embedded == []

    (corpus / "news-zh.md").write_text((corpus / "news-zh.md").read_text("utf-8") + "\n会议圆满结束。\n", "utf-8")
    changed = pipe.ingest([corpus / "news-zh.md"])
    assert changed.updated == ("news-zh",) and emb.embedded and all("Hangzhou" not in t for t in emb.embedded)
    emb.embedded.clear()

    extra = corpus.parent / "extra.txt"
    extra.write_text("INFOBITES\n\nThe Director General visited China in April 2023.\n", "utf-8")
    added = pipe.ingest([extra])
    assert added.added == ("extra",) and all("Director General" in t or "2023" in t for t in emb.embedded)
    index = open_index(settings.index_dir, ("hash",))
    assert set(index.documents) == {"news-en", "news-zh", "extra"}
    emb.embedded.clear()

    removed = pipe.remove(["extra"])
    assert removed.removed == ("extra",) and emb.embedded == []
    assert set(open_index(settings.index_dir, ("hash",)).documents) == {"news-en", "news-zh"}
    with pytest.raises(KeyError, match="not in index"):
        pipe.remove(["nope"])


def test_first_ask_builds_the_default_index(pipeline, settings) -> None:
    assert not settings.index_dir.exists()
    answer = pipeline.ask("Where was the Seminar on Migrant Integration held?")
    assert settings.index_dir.exists()
    assert not answer.abstained and answer.language == "en"
    c = answer.citations[0]
    doc = pipeline.index().documents[c.doc_id]
    assert doc.text[c.start : c.end] == c.quote and c.quote in c.passage
    assert "Hangzhou" in answer.answer and "[1]" in answer.answer
    assert c.title == "Test Newsletter" and c.issue == "11" and c.section.startswith("PROJECT HIGHLIGHTS")
    assert set(answer.timings_ms) >= {"embed", "retrieve", "answer", "total"}


def test_json_contract_shape(pipeline) -> None:
    d = pipeline.ask("port visas 144-hour transit").to_dict()
    assert list(d) == ANSWER_KEYS
    assert set(d["citations"][0]) >= {
        "n",
        "doc_id",
        "title",
        "issue",
        "section",
        "quote",
        "start",
        "end",
        "passage",
        "score",
    }


def test_abstains_in_the_question_language(pipeline) -> None:
    en = pipeline.ask("zebra quantum volcano")
    zh = pipeline.ask("企鹅火山量子")
    hant = pipeline.ask("企鵝火山量子")
    assert en.abstained and en.answer.startswith("The newsletters don't say") and not en.citations
    assert zh.abstained and zh.answer.startswith("新闻简报中没有提到")
    assert hant.abstained and hant.language == "zh-hant" and hant.answer.startswith("新聞簡報中沒有提到")


def test_traditional_question_finds_simplified_text(pipeline) -> None:
    simp = pipeline.ask("边境管理系统研讨会在哪里举行？")
    trad = pipeline.ask("邊境管理系統研討會在哪裡舉行？")
    assert trad.language == "zh-hant" and not trad.abstained
    assert [c.quote for c in trad.citations] == [c.quote for c in simp.citations]
    assert "北京" in trad.answer


@pytest.mark.parametrize("bad,match", [("", "empty"), ("   \n", "empty"), ("x" * 2001, "2001 characters")])
def test_bad_questions_are_refused(pipeline, bad, match) -> None:
    with pytest.raises(QuestionError, match=match):
        pipeline.ask(bad)


def test_filters(pipeline) -> None:
    zh_only = pipeline.ask("seminar 研讨会", filters=Filters(language="zh"))
    assert zh_only.citations and all(c.doc_id == "news-zh" for c in zh_only.citations)
    assert pipeline.ask("seminar", filters=Filters(issue="99")).abstained
    old = pipeline.ask("研讨会 seminar", filters=Filters(date_to="2021-12-31"))
    assert {c.doc_id for c in old.citations} == {"news-zh"}
    pol = pipeline.ask("visa transit policy", filters=Filters(section="policy"))
    assert pol.citations and all(c.section.startswith("POLICY CORNER") for c in pol.citations)


def test_unknown_index_lists_existing(pipeline, settings) -> None:
    pipeline.ingest([settings.corpus])
    other = Pipeline(settings.replace(index_name="missing"), {"hash": HashEmbedder()})
    with pytest.raises(IndexNotFound, match="unknown index 'missing'; existing: default"):
        other.ask("anything")


def test_bad_files_in_a_batch_are_skipped_with_reason(pipeline, settings, corpus: Path) -> None:
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    (corpus / "blob.txt").write_bytes(bytes(range(256)) * 4)
    report = pipeline.ingest([corpus])
    assert sorted(report.added) == ["news-en", "news-zh"]
    assert sorted(Path(e.path).name for e in report.errors) == ["blob.txt", "broken.pdf"]
    assert all(e.reason for e in report.errors)


def test_a_list_item_answers_with_the_lead_in_that_dates_it(settings, tmp_path: Path) -> None:
    folder = tmp_path / "lists"
    folder.mkdir()
    (folder / "policy.md").write_text(
        "---\ntitle: Policy news\nissue: '3'\nlanguage: en\n---\n\n"
        "POLICY CORNER\n\n"
        "Since 8 January 2023 the immigration administration has adjusted its measures as follows.\n\n"
        "• Resumed the issuance of port visas and transit permits.\n\n"
        "• Resumed ordinary passport applications for outbound tourism.\n",
        "utf-8",
    )
    pipe = Pipeline(settings.replace(corpus=folder), {"hash": HashEmbedder()})
    answer = pipe.ask("Since when has the administration resumed the issuance of port visas?")
    assert not answer.abstained
    quotes = [c.quote for c in answer.citations]
    assert quotes[0].startswith("Since 8 January 2023") and any("port visas" in q for q in quotes)


def test_an_index_of_an_older_format_is_rebuilt_from_its_documents(pipeline, settings, caplog) -> None:
    import json

    from rag.store import FORMAT_VERSION, READABLE_FORMATS

    pipeline.index()
    manifest = settings.index_dir / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    data["format_version"] = min(READABLE_FORMATS) - 1  # (format 3 still opens as it is: tests/test_store.py)
    manifest.write_text(json.dumps(data), "utf-8")
    fresh = Pipeline(settings.replace(corpus=settings.index_root / "nowhere"), {"hash": HashEmbedder()})
    index = fresh.index()  # no source files needed: the index stores the cleaned documents
    assert sorted(index.documents) == ["news-en", "news-zh"]
    assert json.loads(manifest.read_text("utf-8"))["format_version"] == FORMAT_VERSION
    assert "rebuilding it from the documents it stores" in caplog.text


@pytest.mark.parametrize(
    "question", ["🙂🙂🙂", "?!…", "Где прошел семинар?", "セミナーはどこで開催されましたか？", "세미나는 어디?"]
)
def test_questions_in_other_languages_get_a_polite_abstention(pipeline, question: str) -> None:
    answer = pipeline.ask(question)
    assert answer.abstained and not answer.citations and answer.verdict == "abstain"
    assert "English or Chinese" in answer.answer and "中文或英文" in answer.answer


def test_answers_carry_a_confidence_and_a_verdict(pipeline) -> None:
    answer = pipeline.ask("Where was the Seminar on Migrant Integration held?")
    d = answer.to_dict()
    assert 0.0 <= d["confidence"] <= 1.0 and d["verdict"] in {"answer", "closest"}
    assert not answer.abstained and "Hangzhou" in answer.answer


def test_exclude_filter_leaves_documents_out(pipeline) -> None:
    hits = pipeline.search("seminar 研讨会", filters=Filters(exclude=("news-en",)))
    assert hits and all(h.chunk.doc_id != "news-en" for h in hits)
    zh = pipeline.search("seminar 研讨会", filters=Filters(language="zh", exclude=("news-zh",)))
    assert zh == []


def test_warm_up_loads_what_the_first_question_would(pipeline) -> None:
    from rag import features, focus

    features._frequencies.cache_clear()
    focus._readings.cache_clear()
    pipeline.warm_up()
    assert features._frequencies.cache_info().currsize == 2  # English and Chinese word frequencies (~1 s)
    assert focus._readings.cache_info().currsize >= 1  # lemminflect's lexicon has been read
