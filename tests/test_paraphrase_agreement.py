"""eval/paraphrase_agreement.py on two tiny hand-made reports (exact shares)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests import eval_scripts

agreement = eval_scripts.load("paraphrase_agreement")

PARAPHRASES = [
    {"id": "pp-en-001a", "language": "en", "question": "Which city?", "unanswerable": False, "paraphrase_of": "en-001"},
    {"id": "pp-en-001b", "language": "en", "question": "Where?", "unanswerable": False, "paraphrase_of": "en-001"},
    {"id": "pp-zh-065a", "language": "zh", "question": "几个人？", "unanswerable": True, "paraphrase_of": "zh-065"},
]


def report(path: Path, rows: dict[str, bool], system: str = "default") -> Path:
    records = [{"system": system, "id": i, "abstained": a} for i, a in rows.items()]
    records.append({"system": "other", "id": "pp-en-001a", "abstained": False})  # a second configuration: ignored
    path.write_text(json.dumps({"rows": records}), "utf-8")
    return path


def test_agreement_per_slice_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = tmp_path / "pp.jsonl"
    questions.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PARAPHRASES), "utf-8")
    dev = report(tmp_path / "dev.json", {"en-001": False, "zh-065": True})
    pp = report(tmp_path / "pp.json", {"pp-en-001a": True, "pp-en-001b": False, "pp-zh-065a": True})
    result = agreement.agreement(PARAPHRASES, agreement.decisions([dev, pp]))
    assert result["slices"] == {"all": (2 / 3, 3), "en answerable": (0.5, 2), "zh unanswerable": (1.0, 1)}
    assert [p["id"] for p in result["disagree"]] == ["pp-en-001a"]
    args = [str(dev), str(pp), "--paraphrases", str(questions)]
    assert agreement.main(args) == 0
    assert "pp-en-001a     original answered" in capsys.readouterr().out
    assert agreement.main([*args, "--fail-under", "0.95"]) == 1
    assert agreement.main([str(pp), "--paraphrases", str(questions)]) == 2  # the originals' decisions are missing
