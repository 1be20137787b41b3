"""Does the answer-vs-abstain decision survive rewording? Agreement of mmsp-paraphrase rows with their originals.

    .venv/bin/newsletter-qa eval run --dataset eval/datasets/mmsp-dev --out /tmp/dev
    .venv/bin/newsletter-qa eval run --dataset eval/datasets/mmsp-paraphrase --out /tmp/pp
    .venv/bin/python eval/paraphrase_agreement.py /tmp/dev/report.json /tmp/pp/report.json [--fail-under 0.95]

Reads the `rows` of the reports (the first configuration of each), pairs every paraphrase with its original
through `paraphrase_of` in eval/datasets/mmsp-paraphrase/questions.jsonl, and prints the share of paraphrases
whose decision (abstained or not) equals the original's, overall and per language and answerability, then the
paraphrases that disagree. Issue 9's target is 0.95. Exit 1 below `--fail-under`, 2 for missing rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

PARAPHRASES = Path(__file__).resolve().parent / "datasets" / "mmsp-paraphrase" / "questions.jsonl"


def decisions(reports: Iterable[Path]) -> dict[str, bool]:
    """Question id -> abstained, from the first configuration's rows of each report."""
    out: dict[str, bool] = {}
    for path in reports:
        report = json.loads(Path(path).read_text("utf-8"))
        rows = report["rows"]
        first = rows[0]["system"] if rows else None
        out.update({r["id"]: bool(r["abstained"]) for r in rows if r["system"] == first})
    return out


def agreement(paraphrases: Sequence[Mapping[str, Any]], abstained: Mapping[str, bool]) -> dict[str, Any]:
    """Share of paraphrases deciding like their original: overall, per (language, answerability), and the misses."""
    needed = {p["id"] for p in paraphrases} | {p["paraphrase_of"] for p in paraphrases}
    missing = sorted(needed - set(abstained))
    if missing:
        raise KeyError(f"no decision for {len(missing)} questions in the reports: {', '.join(missing[:5])}")
    total: Counter[str] = Counter()
    agree: Counter[str] = Counter()
    misses = []
    for p in paraphrases:
        same = abstained[p["id"]] == abstained[p["paraphrase_of"]]
        for key in ("all", f"{p['language']} {'unanswerable' if p['unanswerable'] else 'answerable'}"):
            total[key] += 1
            agree[key] += same
        if not same:
            misses.append(p)
    return {"slices": {k: (agree[k] / total[k], total[k]) for k in sorted(total)}, "disagree": misses}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", nargs="+", type=Path, help="report.json files holding the originals and paraphrases")
    ap.add_argument("--paraphrases", type=Path, default=PARAPHRASES)
    ap.add_argument("--fail-under", type=float, default=None, help="exit 1 when overall agreement is below this")
    args = ap.parse_args(argv)
    lines = args.paraphrases.read_text("utf-8").splitlines()
    paraphrases = [json.loads(line) for line in lines if line.strip()]
    abstained = decisions(args.reports)
    try:
        result = agreement(paraphrases, abstained)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    for key, (share, n) in result["slices"].items():
        print(f"{key:26} {share:.3f}  ({n})")
    for p in result["disagree"]:
        was = "abstained" if abstained[p["paraphrase_of"]] else "answered"
        print(f"  {p['id']:14} original {was:9}  {p['question']}")
    overall = result["slices"]["all"][0]
    if args.fail_under is not None and overall < args.fail_under:
        print(f"FAIL agreement>={args.fail_under}: measured {overall:.3f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
