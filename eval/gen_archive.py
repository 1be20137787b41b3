"""A synthetic archive of N newsletter issues, each in English and Chinese, from the real sample's text.

Every issue keeps the sample's shape (front matter or sidecar metadata, banners and headings, paragraphs) with
its body recombined: a seeded shuffle of the sample's paragraphs, each edition keeping 70–100 % of them, with
the sentences of some paragraphs rotated and every number changed, so no two issues hold the same passages
(nothing is saved by deduplication) while the language, vocabulary and lengths stay those of real newsletters.

Usage: .venv/bin/python eval/gen_archive.py OUT_DIR --issues 100 [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "newsletters"
EN = SAMPLE / "mmsp-ii-newsletter-issue-11.txt"
ZH = SAMPLE / "mmsp-ii-newsletter-issue-11.zh.md"
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")
_NUMBER = re.compile(r"\d+")


def _paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


def _heading(p: str) -> bool:
    p = p.strip()
    return p.startswith("#") or (p.isupper() and len(p) < 80) or len(p) < 25


def _vary(p: str, rng: random.Random) -> str:
    if _heading(p):
        return p
    parts = [s for s in _SENTENCE.split(p) if s]
    if len(parts) > 2 and rng.random() < 0.5:
        k = rng.randrange(1, len(parts))
        parts = parts[k:] + parts[:k]
    joiner = "" if re.search("[\u4e00-\u9fff]", p) else " "
    text = joiner.join(parts)
    return _NUMBER.sub(lambda m: str(rng.randrange(1, 10 ** len(m.group()))), text)


def _body(paragraphs: list[str], rng: random.Random) -> str:
    keep = [p for p in paragraphs if rng.random() < rng.uniform(0.7, 1.0)]
    head, rest = keep[:2], keep[2:]  # the masthead stays first
    rng.shuffle(rest)
    return "\n\n".join(_vary(p, rng) for p in head + rest) + "\n"


def generate(out: Path, issues: int, seed: int = 0) -> list[Path]:
    """Write `issues` × 2 newsletters into `out`; returns the files written."""
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    en_paragraphs = _paragraphs(EN.read_text("utf-8"))
    zh_text = ZH.read_text("utf-8")
    front, zh_body = zh_text.split("\n---\n", 1)
    zh_paragraphs = _paragraphs(zh_body)
    written = []
    for i in range(issues):
        number = 100 + i
        year = 2000 + i // 12
        month = i % 12 + 1
        start, end = f"{year}-{month:02d}-01", f"{year}-{month:02d}-28"
        stem = f"synthetic-newsletter-issue-{number}"
        en_path = out / f"{stem}.txt"
        en_path.write_text(_body(en_paragraphs, rng), "utf-8")
        meta = {
            "title": "EU-China Dialogue on Migration and Mobility Support Project (synthetic)",
            "issue": str(number),
            "period": f"{year}-{month:02d}",
            "date_start": start,
            "date_end": end,
            "language": "en",
            "edition_of": stem,
        }
        (out / f"{stem}.meta.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1), "utf-8")
        zh_front = (
            "---\n"
            f"title: 中欧移民与人员流动对话支持项目通讯（合成）\nissue: {number}\nperiod: {year}年{month}月\n"
            f"date_start: {start}\ndate_end: {end}\nlanguage: zh\nedition_of: {stem}\n"
            "---\n\n"
        )
        zh_path = out / f"{stem}.zh.md"
        zh_path.write_text(zh_front + _body(zh_paragraphs, rng), "utf-8")
        written += [en_path, zh_path]
    assert front.startswith("---")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--issues", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files = generate(args.out, args.issues, args.seed)
    size = sum(f.stat().st_size for f in files)
    print(
        f"{len(files)} newsletters ({args.issues} issues × en + zh), {size / 1e6:.1f} MB in {args.out}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
