"""The service: filters, concurrency (readers never wait for a writer), upload admission, metadata, audit."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rag.auth import SCOPES, Forbidden, Principal
from rag.embed import HashEmbedder
from rag.feedback import neutralise
from rag.pipeline import Pipeline
from rag.retrieve import Filters
from rag.service import BadRequest, InvalidFilter, InvalidQuestion, Service, Upload, parse_filters
from rag.settings import Settings

ADMIN = Principal("test", frozenset(SCOPES), "127.0.0.1")
EN_Q = "Where was the Seminar on Migrant Integration held?"


def test_parse_filters() -> None:
    assert parse_filters("en", " 11 ", "2023-01-01", "") == Filters(language="en", issue="11", date_from="2023-01-01")
    with pytest.raises(InvalidFilter) as e:
        parse_filters(date_from="2023-13-01")
    assert e.value.key == "bad_date" and e.value.values == {"field": "date_from", "value": "2023-13-01"}
    with pytest.raises(InvalidFilter) as e:
        parse_filters(date_from="2024-01-01", date_to="2023-01-01")
    assert e.value.key == "bad_range"
    with pytest.raises(InvalidFilter, match="language"):
        parse_filters(language="fr")


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_look_like_formulas_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell and neutralise("plain") == "plain" and neutralise("") == ""


class SlowEmbedder(HashEmbedder):
    """Indexing takes a while (each batch sleeps); questions are instant."""

    def encode_documents(self, texts):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return super().encode_documents(texts)

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        return HashEmbedder.encode_documents(self, texts)


def test_questions_keep_answering_while_an_upload_indexes(settings: Settings, tmp_path: Path) -> None:
    service = Service(Pipeline(settings, {"hash": SlowEmbedder()}), yield_seconds=0.1)
    service.pipeline.warm_up()
    big = tmp_path / "big.txt"
    big.write_text(
        "\n\n".join(f"Paragraph {i} reports meetings on border management training." for i in range(150))
        + "\n\nThe walrus festival took place in Tromsø.\n",
        "utf-8",
    )
    done = threading.Event()
    writer = threading.Thread(target=lambda: (service.add(ADMIN, [Upload(big, "big.txt")]), done.set()))
    writer.start()
    waits = []
    while not done.is_set():
        t0 = time.perf_counter()
        answer = service.ask(EN_Q)
        waits.append(time.perf_counter() - t0)
        assert "Hangzhou" in answer.answer
    writer.join()
    assert len(waits) >= 5, "the upload finished too fast to test anything"
    # Never the whole indexing (seconds): at most one slice. One question may still meet a GIL-bound stretch of
    # the writer (the BM25 build), seen once at 0.64 s on a loaded 2-core CI run.
    assert max(waits) < 2.0, f"a question waited {max(waits):.2f} s for the writer"
    assert sorted(waits)[-2] < 0.5, f"questions waited {sorted(waits)[-2:]} s for the writer"
    assert "Tromsø" in service.ask("Where did the walrus festival take place?").answer  # swapped in when ready


def test_admission_metadata_and_audit(settings: Settings, tmp_path: Path) -> None:
    service = Service(Pipeline(settings, {"hash": HashEmbedder()}))
    service.documents()
    with pytest.raises(Forbidden):
        service.add(Principal("anonymous-key", frozenset({"ask"})), [])
    with pytest.raises(BadRequest, match="no file"):
        service.add(ADMIN, [])
    # A re-upload of the Chinese edition with front matter that sets only the title keeps issue and period.
    zh = tmp_path / "news-zh.md"
    zh.write_text("---\ntitle: 新标题\n---\n\n2021年6月27日，边境管理系统研讨会在北京举行。\n", "utf-8")
    res = service.add(ADMIN, [Upload(zh, "news-zh.md")])
    meta = service.documents()["news-zh"].meta
    assert res.accepted == ("news-zh.md",) and res.report and res.report.updated == ("news-zh",)
    assert (meta.title, meta.issue, meta.date_start, meta.edition_of) == ("新标题", "7", "2021-01-01", "test-7")
    # Removed, then uploaded again with its own front matter: no stale metadata from the first upload wins.
    service.remove(ADMIN, "news-zh")
    zh.write_text("---\ntitle: 第三版\nissue: 9\n---\n\n2021年6月27日，边境管理系统研讨会在北京举行。\n", "utf-8")
    service.add(ADMIN, [Upload(zh, "news-zh.md")])
    meta = service.documents()["news-zh"].meta
    assert (meta.title, meta.issue, meta.date_start) == ("第三版", "9", "")
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"not a pdf")
    res = service.add(ADMIN, [Upload(bad, "../../x.pdf")])
    assert res.accepted == () and [(r.name, r.key) for r in res.refused] == [("x.pdf", "unreadable")]
    with pytest.raises(InvalidQuestion):
        service.ask(" ")
    rows = [json.loads(x) for x in (settings.data_dir / "audit.jsonl").read_text("utf-8").splitlines()]
    assert [(r["who"], r["action"], r.get("files"), r.get("refused")) for r in rows] == [
        ("test", "add", ["news-zh.md"], []),
        ("test", "remove", None, None),
        ("test", "add", ["news-zh.md"], []),
        ("test", "add", [], ["x.pdf"]),
    ]


def test_serialised_embedders_keep_the_protocol(settings: Settings) -> None:
    service = Service(Pipeline(settings, {"hash": HashEmbedder()}))
    e = service.pipeline.embedders["hash"]
    assert e.id == "hash" and e.dim == 256
    assert np.allclose(e.encode_queries(["a b"]), HashEmbedder().encode_queries(["a b"]))
    Service(service.pipeline)  # wrapping twice does not nest
    assert service.pipeline.embedders["hash"] is e


def test_questions_beyond_the_limit_are_refused_with_retry_after() -> None:
    from rag.service import Busy, Traffic

    traffic = Traffic(limit=2)
    with traffic.question(), traffic.question():
        with pytest.raises(Busy) as info, traffic.question():
            pass
        assert info.value.status == 503 and info.value.retry_after == 1
    with traffic.question():  # the slots are free again
        pass
