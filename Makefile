# Two commands on a fresh machine: `make run` (web UI on the sample corpus) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test lint bench bench-scale bench-milvus load browser

run: $(VENV)/.installed
	$(PY) app.py

test: $(VENV)/.installed browser
	$(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check rag app.py eval tests
	$(VENV)/bin/mypy rag

bench: $(VENV)/.installed
	$(PY) eval/bench_pipeline.py

# Issue 11: 10k / 100k / 1M chunks (1M = the 100k index copied 10 times; dense vectors are random projections,
# see eval/bench_scale.py). About an hour on 2 cores and ~25 GB in /tmp/bench-scale. BACKEND=milvus for another backend.
BACKEND ?= faiss
bench-scale: $(VENV)/.installed
	nice $(PY) eval/bench_scale.py --sizes 10000,100000,1000000 --add-at 10000,100000 --tile-from 100000 \
		--backend $(BACKEND) --out eval/out/bench-scale-$(BACKEND).json

# The Milvus backend (Milvus Lite) against the FAISS folder on a generated archive (docs/scale.md, "Milvus").
bench-milvus: $(VENV)/.installed
	$(PY) eval/bench_milvus.py --issues 100 --out docs/milvus-bench.json

load: $(VENV)/.installed
	$(PY) eval/load_test.py --out docs/load-test.json

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,milvus,llm]'
	touch $@

# The browser test drives Debian's Chromium headless (no browser download at run time); Noto CJK lets the
# Chinese interface (and the thumbs) render with real glyphs.
browser:
	@command -v chromium >/dev/null 2>&1 && [ -d /usr/share/fonts/opentype/noto ] && [ -d /usr/share/fonts/truetype/noto ] || { \
		apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-cjk fonts-noto-color-emoji >/dev/null; }
