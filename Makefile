# dressfinder: `make demo` runs the main job, `make test` the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STORE  ?= demo-store
DATA   ?= ../shared/data
AXE_VERSION ?= 4.14.1

.PHONY: install dataset axe demo test test-report bench eval loadtest serve clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'    # dev = the test tools + every extra (train, milvus, dask)
	touch $@

## dataset: Fashion-MNIST for the demo (Debian's dataset-fashion-mnist; apt-get installs it, with sudo when not root)
dataset: install
	$(BIN)/python -m dressfinder.demo --get-dataset --dataset-only

## axe: axe-core for the pages' accessibility test (tests/test_browser.py), from the npm registry, into .cache/axe (git-ignored)
axe:
	npm install --no-save --no-audit --no-fund --prefix .cache/axe axe-core@$(AXE_VERSION)

## demo: build a store of Fashion-MNIST dresses (installing them first if needed), search it, then serve it on http://127.0.0.1:2000/
demo: install
	$(BIN)/python -m dressfinder.demo --get-dataset --store $(STORE) --serve

## test: the default suite (tests needing ../shared/data skip when it is absent)
test: install
	$(BIN)/python -m pytest -q

## test-report: run the suite and write what it did (count, time, skips, machine) into README's tests block
test-report: install
	$(BIN)/python scripts/test_report.py --readme README.md

## bench: indexing speed, query latency, recall at scale (writes bench/out/, docs/scaling.md's and README's bench tables)
bench: install
	$(BIN)/dressfinder bench --data $(DATA) --out bench/out --doc docs/scaling.md --readme README.md

## eval: retrieval quality, seed vs pretrained vs default (float32 and int8), on ../shared/data (writes docs/eval.md, README's table)
eval: install
	$(BIN)/dressfinder evaluate $(DATA) --markdown docs/eval.md --out bench/out/eval.json --readme README.md

## loadtest: 16 clients for 60 s against a local server (127.0.0.1 only) on the whole shared catalogue
## (the 120 generated or f21 dresses without it); writes README's loadtest block
loadtest: install
	$(BIN)/python bench/loadtest.py --clients 16 --seconds 60 $(if $(wildcard $(DATA)),--catalog $(DATA)) --readme README.md

serve: install
	$(BIN)/dressfinder serve --store $(STORE)

clean:
	rm -rf demo-data $(STORE) .pytest_cache bench/out
