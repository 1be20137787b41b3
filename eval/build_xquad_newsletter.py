"""Build a held-out newsletter QA dataset from the XQuAD **test** split (articles 25-48), never from dev.

Each test article becomes a small "newsletter" in two editions (English and Simplified Chinese, one Markdown
file each with front matter); a seeded sample of its questions becomes the answerable questions, each with the
sentence holding its answer as the evidence quote, checked verbatim in the cleaned text; the hand-written
unanswerable questions of eval/datasets/xquad-heldout-unanswerable.jsonl are merged in. The XQuAD files are
not part of the repository, so the dataset is built outside it:

    .venv/bin/python eval/build_xquad_newsletter.py --data ../shared/data/xquad --out /tmp/xquad-heldout
    .venv/bin/newsletter-qa eval run --dataset /tmp/xquad-heldout

Format of the output: eval/datasets/README.md. Same inputs and seed, same files, byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rag.clean import clean
from rag.ingest import read
from rag.lang import detect
from rag.xquad import LANGUAGES, split_articles

ROOT = Path(__file__).resolve().parents[1]
UNANSWERABLE = ROOT / "eval" / "datasets" / "xquad-heldout-unanswerable.jsonl"
SPLIT = "test"  # the dev split (the first 24 articles) trains the answer stage: never here
ANSWERABLE = 300
SEED = 0
ZH_EDITION = ".zh"  # doc_id suffix of the Chinese edition, as in data/newsletters
# (question language, evidence editions) in turn over the shuffled questions: per 12, half cite both editions,
# a third only the other language's edition (cross-lingual), a sixth only the question's own edition
PATTERN = (
    ("en", "both"),
    ("zh", "both"),
    ("en", "other"),
    ("zh", "other"),
    ("en", "both"),
    ("zh", "both"),
    ("en", "own"),
    ("zh", "own"),
    ("en", "other"),
    ("zh", "other"),
    ("en", "both"),
    ("zh", "both"),
)
FIELDS = ("id", "language", "question", "evidence", "answer", "unanswerable")

_CLOSERS = "\"'”’」』)）\\]"
# a sentence ends after 。！？ (or ! ? . followed by space); closing quotes and brackets stay with it
_END = re.compile(f"(?:[。！？]|[.!?](?=[{_CLOSERS}]*\\s))[{_CLOSERS}]*")
_ABBREVIATION = re.compile(r"(?:\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Gen|Col|Lt|Rev|No|Co|Inc|Ltd|vs|etc|e\.g|i\.e)|\b[A-Z])\.$")
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Item:
    """One XQuAD question in both languages: article, paragraph, and each language's record."""

    article: int
    paragraph: int
    qid: str
    qa: dict[str, dict[str, Any]]  # language -> the XQuAD qa record


def load(folder: Path) -> tuple[dict[str, list[dict[str, Any]]], range]:
    """Both languages' articles and the test split's article indices; refuses files that are not parallel."""
    data = {}
    for lang in LANGUAGES:
        path = folder / f"xquad.{lang}.json"
        if not path.is_file():
            raise FileNotFoundError(f"no {path}: give the folder holding xquad.en.json and xquad.zh.json")
        data[lang] = json.loads(path.read_text("utf-8"))["data"]
    shape = {lang: [[len(p["qas"]) for p in a["paragraphs"]] for a in arts] for lang, arts in data.items()}
    if shape["en"] != shape["zh"]:
        raise ValueError(
            f"{folder}: the English and Chinese files are not parallel (articles × paragraphs × questions)"
        )
    return data, split_articles(len(data["en"]), SPLIT)


def doc_id(article: int, title: str, lang: str) -> str:
    """`xquad-a25-american-broadcasting-company`, and `….zh` for the Chinese edition (issue = article number)."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return f"xquad-a{article + 1:02d}-{slug}" + (ZH_EDITION if lang == "zh" else "")


def newsletter(article: dict[str, Any], number: int, lang: str, edition_of: str) -> str:
    """One edition as Markdown: front matter (title, issue, language, edition_of), then the paragraphs."""
    title = article["title"].replace("_", " ")
    front = f"---\ntitle: {title}\nissue: {number}\nlanguage: {lang}\nedition_of: {edition_of}\n---\n\n"
    return front + "\n\n".join(p["context"].strip() for p in article["paragraphs"]) + "\n"


def sentences(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each sentence of an English or Chinese paragraph; spaces between them belong to none."""
    start = 0
    for m in _END.finditer(text):
        if text[m.start()] == "." and _ABBREVIATION.search(text[start : m.start() + 1]):
            continue  # "Mr." or "U.S." does not end a sentence
        yield start, m.end()
        start = m.end()
    if text[start:].strip():
        yield start, len(text)


def answer_sentence(context: str, qa: dict[str, Any]) -> str | None:
    """The sentence(s) holding the first answer span, stripped; None when the span cannot be placed."""
    answer = qa["answers"][0]
    begin, text = int(answer["answer_start"]), answer["text"]
    if context[begin : begin + len(text)] != text:
        if context.count(text) != 1:
            return None
        begin = context.index(text)  # an offset off by a few characters; the text itself is unambiguous
    end = begin + len(text)
    spans = [(s, e) for s, e in sentences(context) if s < end and begin < e]
    return context[spans[0][0] : spans[-1][1]].strip() if spans else None


def verbatim(quote: str, cleaned: str) -> str | None:
    """The quote as it occurs in the cleaned text (ingest collapses runs of spaces), or None."""
    for candidate in (quote, _SPACE.sub(" ", quote)):
        if candidate and candidate in cleaned:
            return candidate
    return None


def items(data: dict[str, list[dict[str, Any]]], articles: range) -> list[Item]:
    """Every question of the split, in file order, paired across the two languages by position."""
    out = []
    for a in articles:
        for p, (en_par, zh_par) in enumerate(
            zip(data["en"][a]["paragraphs"], data["zh"][a]["paragraphs"], strict=True)
        ):
            for en_qa, zh_qa in zip(en_par["qas"], zh_par["qas"], strict=True):
                out.append(Item(a, p, en_qa["id"], {"en": en_qa, "zh": zh_qa}))
    return out


def build(
    data_dir: Path, out: Path, answerable: int = ANSWERABLE, seed: int = SEED, unanswerable: Path = UNANSWERABLE
) -> dict[str, Any]:
    """Write out/corpus/*.md, out/questions.jsonl and out/dataset.json; returns the dataset.json record."""
    data, articles = load(Path(data_dir))
    out = Path(out)
    _prepare(out)
    corpus = out / "corpus"
    corpus.mkdir(parents=True)
    cleaned: dict[str, str] = {}
    ids: dict[tuple[int, str], str] = {}
    for a in articles:
        edition_of = doc_id(a, data["en"][a]["title"], "en")
        for lang in LANGUAGES:
            did = doc_id(a, data["en"][a]["title"], lang)
            path = corpus / f"{did}.md"
            path.write_text(newsletter(data[lang][a], a + 1, lang, edition_of), "utf-8")
            cleaned[did] = clean(read(path)).text
            ids[a, lang] = did

    pool = items(data, articles)
    random.Random(seed).shuffle(pool)
    records: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    for item in pool:
        if len(records) == answerable:
            break
        lang, editions = PATTERN[len(records) % len(PATTERN)]
        other = "zh" if lang == "en" else "en"
        wanted = {"both": (lang, other), "own": (lang,), "other": (other,)}[editions]
        question = item.qa[lang]["question"].strip()
        if detect(question) != lang:
            skipped[f"question not detected as {lang}"] += 1
            continue
        evidence = []
        for edition in sorted(wanted, key=("en", "zh").index):
            context = data[edition][item.article]["paragraphs"][item.paragraph]["context"]
            sentence = answer_sentence(context, item.qa[edition])
            quote = verbatim(sentence, cleaned[ids[item.article, edition]]) if sentence else None
            if quote is None:
                break
            evidence.append({"doc_id": ids[item.article, edition], "quote": quote})
        else:
            records.append(
                {
                    "id": f"xq-{lang}-{item.qid}",
                    "language": lang,
                    "question": question,
                    "evidence": evidence,
                    "answer": item.qa[lang]["answers"][0]["text"].strip(),
                    "unanswerable": False,
                }
            )
            continue
        skipped["answer sentence not found verbatim in the cleaned text"] += 1
    if len(records) < answerable:
        raise ValueError(f"only {len(records)} usable questions in the {SPLIT} split; asked for {answerable}")
    written = _unanswerable(unanswerable)
    everything = sorted([*records, *written], key=lambda r: ("en", "zh", "zh-hant").index(r["language"]))
    (out / "questions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in everything), "utf-8")
    meta = {
        "name": out.name,
        "corpus": "corpus",
        "description": (
            f"Held-out set on a public text not used for training: XQuAD {SPLIT} split (articles "
            f"{articles[0] + 1}-{articles[-1] + 1}), one newsletter per article in an English and a Chinese edition; "
            f"{len(records)} answerable questions (seed {seed}) with the answer sentence as evidence, in one or both "
            f"editions, and {len(written)} hand-written unanswerable ones. Built by eval/build_xquad_newsletter.py."
        ),
        "source": {
            "data": "XQuAD (CC BY-SA 4.0)",
            "split": SPLIT,
            "articles": [articles[0] + 1, articles[-1] + 1],
            "seed": seed,
            "sha256": {f"xquad.{lang}.json": _sha256(Path(data_dir) / f"xquad.{lang}.json") for lang in LANGUAGES}
            | {unanswerable.name: _sha256(unanswerable)},
            "skipped": dict(sorted(skipped.items())),
        },
    }
    (out / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", "utf-8")
    return meta


def _prepare(out: Path) -> None:
    """An empty or absent folder, or one this builder wrote before (its corpus is replaced); else refuse."""
    if out.exists() and any(out.iterdir()):
        if not (out / "dataset.json").is_file() or not (out / "questions.jsonl").is_file():
            raise FileExistsError(f"{out} is not empty and holds no dataset: choose another --out")
        shutil.rmtree(out / "corpus", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _unanswerable(path: Path) -> list[dict[str, Any]]:
    """The hand-written unanswerable questions, checked: dataset fields, no evidence, detected language."""
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    for r in records:
        if tuple(r) != FIELDS or r["evidence"] or r["answer"] or r["unanswerable"] is not True:
            raise ValueError(f"{path}: {r.get('id')}: expected {FIELDS} with no evidence, no answer, unanswerable")
        if detect(r["question"]) != r["language"]:
            raise ValueError(f"{path}: {r['id']}: language {r['language']!r}, detected {detect(r['question'])!r}")
    return records


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder holding xquad.en.json and xquad.zh.json")
    ap.add_argument("--out", type=Path, required=True, help="dataset folder to write (outside the repository)")
    ap.add_argument("--answerable", type=int, default=ANSWERABLE, help=f"answerable questions (default {ANSWERABLE})")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--unanswerable", type=Path, default=UNANSWERABLE, help="hand-written unanswerable questions")
    args = ap.parse_args(argv)
    try:
        meta = build(args.data, args.out, args.answerable, args.seed, args.unanswerable)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    records = [json.loads(line) for line in (args.out / "questions.jsonl").read_text("utf-8").splitlines()]
    counts = Counter((r["language"], "unanswerable" if r["unanswerable"] else "answerable") for r in records)
    print(f"{args.out}: {len(records)} questions {dict(sorted(counts.items()))}; skipped {meta['source']['skipped']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
