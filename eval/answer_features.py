"""Dump answer-stage features for every question of a dataset (for tuning on the DEV set only).

Usage: python eval/answer_features.py eval/datasets/mmsp-dev > /tmp/features.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rag import lang
from rag.pipeline import Pipeline
from rag.retrieve import Filters, search
from rag.settings import load_settings


def main(dataset: Path) -> None:
    settings = load_settings()
    pipe = Pipeline(settings)
    index = pipe.index()
    row_of = {c.chunk_id: i for i, c in enumerate(index.chunks)}
    for line in (dataset / "questions.jsonl").read_text("utf-8").splitlines():
        q = json.loads(line)
        gold = []
        for ev in q["evidence"]:
            text = index.documents[ev["doc_id"]].text
            s = text.index(ev["quote"])
            gold.append((ev["doc_id"], s, s + len(ev["quote"])))
        ev_langs = {index.documents[d].language for d, _, _ in gold}
        filters = Filters(language=ev_langs.pop()) if len(ev_langs) == 1 else Filters()
        language = lang.detect(q["question"])
        text = lang.to_simplified(q["question"]) if language == "zh-hant" else q["question"]
        qv = {n: e.encode_queries([text])[0] for n, e in pipe.embedders.items()}
        hits = search(index, text, qv, pipe.fusion(), filters, 5, language)
        lex = dict(index.sentence_lexical.search(text, k=len(index.sentences)))
        sents = []
        for rank, h in enumerate(hits):
            for r in index.chunk_sentences[row_of[h.chunk.chunk_id]]:
                d, s, e = index.sentences[r]
                sents.append(
                    {
                        "rank": rank,
                        "hit_score": h.score,
                        "doc": d,
                        "start": s,
                        "end": e,
                        "text": index.documents[d].text[s:e],
                        "heading": h.chunk.heading,
                        "cos": {ch: float(index.sentence_vectors[ch][r] @ qv[ch]) for ch in qv},
                        "lex": lex.get(r, 0.0),
                        "units": len(index.documents[d].text[s:e]),
                        "gold": any(d == gd and s < ge and e > gs for gd, gs, ge in gold),
                        "also_in": list(h.also_in),
                    }
                )
        hit_rel = [
            any(h.chunk.doc_id == gd and h.chunk.start < ge and h.chunk.end > gs for gd, gs, ge in gold)
            or any(a == gd for a in h.also_in for gd, _, _ in gold)
            for h in hits
        ]
        print(
            json.dumps(
                {
                    "id": q["id"],
                    "language": q["language"],
                    "question": q["question"],
                    "unanswerable": q["unanswerable"],
                    "hits": [
                        {"score": h.score, "channels": h.channels, "rel": rel, "lang": h.chunk.language}
                        for h, rel in zip(hits, hit_rel, strict=True)
                    ],
                    "sentences": sents,
                },
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
