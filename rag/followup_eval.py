"""Follow-up questions benchmark: evidence recall of a conversation's second turn, as each way of reading it retrieves.

`newsletter-qa eval followup --dataset eval/datasets/mmsp-followup [--llm URL --model NAME] [--out DIR]`.
Systems: `alone` (the follow-up as if it had no history), `resolved` (with the previous turn's key terms,
`rag.followup`, no LLM), `condensed` (rewritten by the LLM, with --llm), and `standalone` (the question the
follow-up stands for, as written: the ceiling). Slices: all, en, zh, and follow-ups vs changes of topic. Besides
evidence recall, `answered` (not abstained) and `cites_evidence` (the answer cites a gold sentence) of the answer
the assistant gives: the follow-up asked with its history, or (`alone`, `standalone`) the question by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.settings import PROJECT_ROOT, Settings

K = 10


@dataclass(frozen=True, slots=True)
class Conversation:
    cid: str
    language: str
    follow_up: bool  # False: the second turn changes the topic and stands alone
    first: str
    second: str
    standalone: str  # what the second turn stands for, written out
    evidence: tuple[tuple[str, str], ...]  # (doc_id, quote) of the second turn


def load_conversations(folder: Path) -> tuple[Path, list[Conversation]]:
    """The corpus folder and the conversations of a follow-up dataset (dataset.json + conversations.jsonl)."""
    from rag.qa_eval import DatasetError

    meta_file = Path(folder) / "dataset.json"
    rows_file = Path(folder) / "conversations.jsonl"
    if not meta_file.is_file() or not rows_file.is_file():
        raise DatasetError(f"{folder}: needs dataset.json and conversations.jsonl")
    meta = json.loads(meta_file.read_text("utf-8"))
    out = []
    for n, line in enumerate(rows_file.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        r = json.loads(line)
        turns = r.get("turns") or []
        if len(turns) != 2 or not turns[1].get("evidence"):
            raise DatasetError(f"{rows_file}:{n}: a conversation has two turns, the second with evidence")
        second = turns[1]
        out.append(
            Conversation(
                cid=r["id"],
                language=r["language"],
                follow_up=bool(r.get("follow_up", True)),
                first=turns[0]["question"],
                second=second["question"],
                standalone=second.get("standalone", second["question"]),
                evidence=tuple((e["doc_id"], e["quote"]) for e in second["evidence"]),
            )
        )
    return (meta_file.parent / meta["corpus"]).resolve(), out


def evaluate(pipe: Any, conversations: Sequence[Conversation], use_llm: bool) -> list[dict[str, Any]]:
    """One row per conversation and system: the question searched, rank of the first relevant passage, R@1/3/5."""
    from rag.metrics import citation_precision
    from rag.qa_eval import Evidence, Question, is_relevant, locate
    from rag.retrieve import Filters
    from rag.types import Turn

    documents = pipe.index().documents
    rows = []
    for c in conversations:
        q = Question(c.cid, c.language, c.second, tuple(Evidence(d, t) for d, t in c.evidence), "", False)
        gold = locate(q, documents)
        history = (Turn(c.first, pipe.ask(c.first, llm=False).answer),)  # as the chat sends it
        asked = {
            "alone": c.second,
            "resolved": pipe._resolve(c.second, history, False),
            "standalone": c.standalone,
        }
        if use_llm:
            asked["condensed"] = pipe._resolve(c.second, history, True)
        for system, question in asked.items():
            pool = Filters(language=gold.pool_language)
            hits = pipe.search(question, k=K, filters=pool)
            relevant = [is_relevant(h, gold) for h in hits]
            first = next((i for i, r in enumerate(relevant, start=1) if r), None)
            # The answer as the assistant gives it: the follow-up asked with its history, or the question alone.
            # (`condensed`: the extractive answer to the LLM's rewrite; generation is `eval run`'s business.)
            if system == "resolved":
                answer = pipe.ask(c.second, filters=pool, history=history, llm=False)
            else:
                answer = pipe.ask(question, filters=pool, llm=False)
            cited = [(x.doc_id, x.start, x.end) for x in answer.citations]
            rows.append(
                {
                    "system": system,
                    "id": c.cid,
                    "language": c.language,
                    "follow_up": c.follow_up,
                    "question": question,
                    "first_relevant_rank": first,
                    **{f"evidence_recall@{k}": float(first is not None and first <= k) for k in (1, 3, 5)},
                    "answered": float(not answer.abstained),
                    "cites_evidence": float(citation_precision(cited, gold.spans) > 0) if cited else 0.0,
                    "answer": answer.answer,
                }
            )
    return rows


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    from rag.metrics import bootstrap_ci

    systems: dict[str, dict[str, dict[str, Any]]] = {}
    for system in dict.fromkeys(r["system"] for r in rows):
        mine = [r for r in rows if r["system"] == system]
        slices = {
            "all": mine,
            "en": [r for r in mine if r["language"] == "en"],
            "zh": [r for r in mine if r["language"] == "zh"],
            "follow-ups": [r for r in mine if r["follow_up"]],
            "follow-ups en": [r for r in mine if r["follow_up"] and r["language"] == "en"],
            "follow-ups zh": [r for r in mine if r["follow_up"] and r["language"] == "zh"],
            "topic changes": [r for r in mine if not r["follow_up"]],
        }
        table: dict[str, dict[str, Any]] = {}
        for name, part in slices.items():
            if not part:
                continue
            cells: dict[str, Any] = {"questions": len(part)}
            for metric in (*(f"evidence_recall@{k}" for k in (1, 3, 5)), "answered", "cites_evidence"):
                values = [r[metric] for r in part]
                cells[metric] = {
                    "value": sum(values) / len(values),
                    "ci": list(bootstrap_ci(values, seed=0)),
                    "n": len(values),
                }
            table[name] = cells
        systems[system] = table
    return systems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `newsletter-qa eval followup`."""
    from rag.cli import add_llm_arguments

    parser.add_argument("--dataset", type=Path, default=PROJECT_ROOT / "eval" / "datasets" / "mmsp-followup")
    parser.add_argument("--out", type=Path, help="report folder (default: eval/out/followup-<timestamp>/)")
    add_llm_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Follow-up evidence recall: `alone`, `resolved` (no LLM), `condensed` (--llm) and `standalone`."""
    from rag.pipeline import Pipeline
    from rag.qa_eval import DatasetError, git_commit, settings_dict
    from rag.report import fmt, value_of, write_reports

    try:
        corpus, conversations = load_conversations(args.dataset)
    except (DatasetError, OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = settings.replace(index_name="eval-followup", corpus=corpus)
    pipe = Pipeline(settings)
    pipe.ingest([corpus], replace_all=True)
    pipe.warm_up()
    rows = evaluate(pipe, conversations, settings.llm_enabled)
    systems = aggregate(rows)
    result = {
        "title": f"Follow-up questions — {Path(args.dataset).name}",
        "meta": {
            "benchmark": "newsletter-qa eval followup",
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit() or None,
            "conversations": len(conversations),
            "settings": settings_dict(settings),
        },
        "systems": systems,
        "metrics": [
            "evidence_recall@1",
            "evidence_recall@3",
            "evidence_recall@5",
            "answered",
            "cites_evidence",
            "questions",
        ],
        "bar_metrics": ["evidence_recall@3"],
        "rows": rows,
    }
    out = args.out or PROJECT_ROOT / "eval" / "out" / datetime.now().strftime("followup-%Y%m%d-%H%M%S")
    paths = write_reports(result, out)
    print(f"{'system':<11}{'slice':<15}{'R@1':>7}{'R@3':>7}{'R@5':>7}{'answered':>10}{'cites ev.':>10}{'n':>5}")
    for system, table in systems.items():
        for name, t in table.items():
            cells = "".join(
                f"{fmt(value_of(t[m])):>{w}}"
                for m, w in (
                    ("evidence_recall@1", 7),
                    ("evidence_recall@3", 7),
                    ("evidence_recall@5", 7),
                    ("answered", 10),
                    ("cites_evidence", 10),
                )
            )
            print(f"{system:<11}{name:<15}{cells}{t['questions']:>5}")
    print(f"reports: {paths['md']}  {paths['json']}")
    return 0
