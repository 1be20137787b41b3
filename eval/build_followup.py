"""Build eval/datasets/mmsp-followup: two-turn conversations on the sample corpus, from mmsp-dev's questions.

Each conversation's first turn is a dev question as written; its second turn is a follow-up written by hand that
leans on the first ("And who organised it?"), standing for another dev question about the same event, whose
evidence and reference answer it takes (the dev question is kept as `standalone`). A few second turns are
standalone questions on another topic (`follow_up: false`): carrying the first turn's terms must not hurt them.

    python eval/build_followup.py   # rewrites eval/datasets/mmsp-followup/conversations.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEV = HERE / "datasets" / "mmsp-dev" / "questions.jsonl"
OUT = HERE / "datasets" / "mmsp-followup"

# (first dev question, follow-up as asked, dev question it stands for)
FOLLOW_UPS = [
    ("en-001", "And how many Chinese officials attended it?", "en-010"),
    ("en-001", "Which multilateral instrument was discussed there?", "en-012"),
    ("en-001", "Was there a Korean institution there?", "en-014"),
    ("en-023", "Who organised it?", "en-024"),
    ("en-023", "Which places did the delegation visit?", "en-028"),
    ("en-025", "How many countries was that?", "en-026"),
    ("en-035", "Which EU agencies sent experts to it?", "en-038"),
    ("en-035", "What was its purpose?", "en-037"),
    ("en-036", "Which provincial departments attended?", "en-040"),
    ("en-041", "And what did both sides commit to at the end?", "en-042"),
    ("en-043", "How many Chinese representatives took part?", "en-044"),
    ("en-043", "Who spoke at its opening?", "en-046"),
    ("en-045", "Which European institutions provided speakers?", "en-048"),
    ("en-048", "What example of integrated border management did IOM present there?", "en-049"),
    ("en-051", "Which Chinese official did he hold talks with?", "en-053"),
    ("en-052", "What did he commend China for?", "en-054"),
    ("en-055", "Which visa-free transit durations does it implement?", "en-056"),
    ("en-056", "Where can I find full details of these measures?", "en-061"),
    ("en-017", "What is his position?", "en-018"),
    ("en-021", "Why did he mention the Hainan Free Trade Port?", "en-032"),
    ("en-004", "Which organisation implements it?", "en-007"),
    ("en-004", "Under which funding instrument is it financed?", "en-006"),
    ("en-002", "What does it say about how MMSP II ended?", "en-003"),
    ("en-030", "What did the European participants learn about during the trip?", "en-034"),
    ("en-028", "Did they visit an airport?", "en-029"),
    ("zh-001", "有多少名中方代表参加？", "zh-009"),
    ("zh-001", "会上讨论了哪个联合国多边文书？", "zh-010"),
    ("zh-001", "哪些外国机构的专家参加了？", "zh-012"),
    ("zh-021", "考察团参观了哪些地方？", "zh-023"),
    ("zh-021", "哪些国家的大使馆人员参加了？", "zh-022"),
    ("zh-023", "他们在三亚参观了哪里？", "zh-024"),
    ("zh-025", "他希望与哪些机构加强合作？", "zh-026"),
    ("zh-031", "由谁组织？", "zh-032"),
    ("zh-031", "这次研讨会的目的是什么？", "zh-033"),
    ("zh-031", "欧方有哪些机构参加了？", "zh-036"),
    ("zh-041", "由谁联合举办？", "zh-042"),
    ("zh-041", "有多少名中方代表？", "zh-043"),
    ("zh-041", "它的开幕式上有哪些人致辞？", "zh-044"),
    ("zh-046", "国际移民组织介绍了哪个成功范例？", "zh-047"),
    ("zh-051", "这是他自2019年以来第几次访华？", "zh-052"),
    ("zh-051", "他赞扬了中国哪些方面？", "zh-054"),
    ("zh-055", "为什么调整这些政策？", "zh-063"),
    ("zh-055", "完整信息在哪里查看？", "zh-062"),
    ("zh-014", "他担任什么职务？", "zh-015"),
    ("zh-017", "他为什么提到海南自由贸易港？", "zh-028"),
    ("zh-003", "由谁负责实施？", "zh-007"),
    ("zh-003", "由什么资金工具资助？", "zh-006"),
    ("zh-027", "欧洲与会者通过这次考察了解了哪些政策？", "zh-029"),
]
# (first dev question, second dev question): a change of topic, the second asked as written
TOPIC_CHANGES = [
    ("en-001", "en-051"),
    ("en-023", "en-043"),
    ("en-035", "en-020"),
    ("en-055", "en-009"),
    ("zh-001", "zh-041"),
    ("zh-021", "zh-051"),
    ("zh-031", "zh-016"),
    ("zh-055", "zh-045"),
]


def turn(record: dict, question: str | None = None) -> dict:
    out = {"question": question or record["question"], "evidence": record["evidence"], "answer": record["answer"]}
    if question is not None:
        out["standalone"] = record["question"]
    return out


def build() -> list[dict]:
    dev = {r["id"]: r for r in map(json.loads, DEV.read_text("utf-8").splitlines()) if r.get("id")}
    rows = []
    for n, (first, follow, stands_for) in enumerate(FOLLOW_UPS, start=1):
        a, b = dev[first], dev[stands_for]
        assert a["language"] == b["language"] and not a["unanswerable"] and not b["unanswerable"]
        rows.append(
            {
                "id": f"fu-{a['language']}-{n:03d}",
                "language": a["language"],
                "follow_up": True,
                "turns": [turn(a), turn(b, follow)],
            }
        )
    for n, (first, second) in enumerate(TOPIC_CHANGES, start=1):
        a, b = dev[first], dev[second]
        rows.append(
            {
                "id": f"tc-{a['language']}-{n:03d}",
                "language": a["language"],
                "follow_up": False,
                "turns": [turn(a), turn(b)],
            }
        )
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rows = build()
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (OUT / "conversations.jsonl").write_text(text, "utf-8")
    meta = {
        "name": "mmsp-followup",
        "corpus": "../../../data/newsletters",
        "description": "Two-turn conversations (en, zh) on MMSP II newsletter issue 11: a dev question, then a "
        "follow-up that leans on it (or, for follow_up: false, a standalone question on another topic). Built by "
        "eval/build_followup.py from mmsp-dev; second-turn evidence is that of the dev question it stands for.",
    }
    (OUT / "dataset.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", "utf-8")
    print(f"{len(rows)} conversations -> {OUT}")


if __name__ == "__main__":
    main()
