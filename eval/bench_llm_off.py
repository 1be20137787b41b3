"""With no LLM configured nothing changes: warm `Pipeline.ask` against the body `ask` had before generated answers
(copied below), interleaved question by question in one process, on the dev questions.

    python eval/bench_llm_off.py   # needs the eval-default index (any `eval run` builds it)
"""

import dataclasses
import json
import statistics
import time
from pathlib import Path

from rag import lang
from rag.answer import UNSUPPORTED, compose
from rag.pipeline import Pipeline
from rag.retrieve import Filters, search
from rag.settings import load_settings
from rag.types import Answer


def old_ask(self, question, k=None, filters=Filters()):
    timings = {}
    t = time.perf_counter()
    q = self.check_question(question)
    language = lang.detect(q)
    if not lang.supported(q):
        return Answer(question=q, language=language, abstained=True, answer=UNSUPPORTED)
    index = self.index()
    timings["load"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    qv = self._query_vectors(q, language)
    timings["embed"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    hits = search(index, self._query_text(q, language), qv, self.fusion(), filters, k or self.settings.k, language)
    timings["retrieve"] = (time.perf_counter() - t) * 1000
    t = time.perf_counter()
    answer = compose(q, self._query_text(q, language), language, index, hits, qv, self.answer_settings())
    timings["answer"] = (time.perf_counter() - t) * 1000
    timings["total"] = sum(timings.values())
    return dataclasses.replace(answer, timings_ms=timings)


pipe = Pipeline(load_settings().replace(index_name="eval-default"))
pipe.warm_up()
lines = Path("eval/datasets/mmsp-dev/questions.jsonl").read_text("utf-8").splitlines()
qs = [json.loads(line)["question"] for line in lines if line.strip()]
new, old = [], []
for _rep in range(2):
    for i, q in enumerate(qs):
        pair = [("new", pipe.ask), ("old", lambda x: old_ask(pipe, x))]
        for name, f in pair if i % 2 == 0 else pair[::-1]:
            t = time.perf_counter()
            f(q)
            d = (time.perf_counter() - t) * 1000
            (new if name == "new" else old).append(d)
print(
    f"questions {len(qs)}x2  new p50 {statistics.median(new):.1f} ms  old p50 {statistics.median(old):.1f} ms  "
    f"new mean {statistics.mean(new):.1f}  old mean {statistics.mean(old):.1f}"
)
