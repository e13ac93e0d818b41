# Two commands do all set-up: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
# Everything the service loads ships in installed packages; never reach for a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test bench bench-load bench-crash bench-slow bench-docstore bench-faiss bench-qdrant bench-encoder bench-encoder-isa bench-feeds lint

# axe-core checks the staff page's accessibility in the browser tests (injected by the tests).
AXE_VERSION := 4.14.1
AXE := $(VENV)/axe/node_modules/axe-core/axe.min.js

install: $(VENV)/.installed $(AXE) /usr/bin/chromium

# The browser tests drive Debian's Chromium through Playwright: never `playwright install`, which
# downloads a browser build of its own (there is no internet to download it from).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

$(AXE): | $(VENV)/.installed
	command -v npm >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm)
	npm install --silent --no-audit --no-fund --prefix $(VENV)/axe axe-core@$(AXE_VERSION)

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch 2.13.0 is the CPU wheel pip finds locally; installing it first keeps CUDA packages out.
	$(BIN)/pip install --quiet torch==2.13.0
	# [llm]: llama-cpp-python builds llama.cpp from source (~4 min); the tests run it for real.
	# [qdrant]: qdrant-client, whose embedded mode the tests use. [postgres]: psycopg and its pool;
	# the tests start a real PostgreSQL server from Debian's binaries, installed here if missing.
	$(BIN)/pip install --quiet -e '.[test,llm,qdrant,postgres]'
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q postgresql)
	touch $@

run: install
	$(BIN)/rag ingest seeds
	$(BIN)/rag serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/pytest -q

# The peer recipe (LlamaIndex's default) and ours side by side: `make bench CORPUS=folder`,
# `make bench BENCH_ARGS='--limit 200'` for a quick run. The full BBC corpus takes ~3-5 minutes.
bench: $(VENV)/.bench-installed
	$(BIN)/python bench/compare.py $(CORPUS) $(BENCH_ARGS)

# [bench]: the peer recipe's two llama-index packages, which the service itself does not need.
$(VENV)/.bench-installed: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

bench-load: install
	$(BIN)/python bench/load.py

bench-crash: install
	$(BIN)/python bench/crash.py

# An authorised client's p50 idle and while 32 keyless sockets trickle bodies (BENCH_ARGS='--open': no keys).
bench-slow: install
	$(BIN)/python bench/slow_clients.py $(BENCH_ARGS)

# SQLite against PostgreSQL as the docstore: ingest, /ask and /search p50/p95 (LIMIT files, same run).
LIMIT ?= 400
bench-docstore: install
	$(BIN)/python bench/docstore.py --limit $(LIMIT)

# FAISS kinds over 1M synthetic vectors (N=200000 for a quicker run; REAL=indexes/default adds a
# built index's sentences, its titles as questions); ~30 minutes at 1M, most of it building HNSW.
N ?= 1000000
bench-faiss: install
	$(BIN)/python bench/faiss_scale.py --n $(N) $(if $(REAL),--real $(REAL))

# Qdrant beside flat FAISS (embedded mode unless URL=http://host:6333 names a server).
QDRANT_N ?= 10000
bench-qdrant: install
	$(BIN)/python bench/qdrant_scale.py --n $(QDRANT_N) $(if $(URL),--url $(URL))

# torch vs ONNX Runtime fp32/int8 and OpenVINO bf16 on BBC chunks: word pieces/s and cosine to torch (ARTICLES=2225 for all).
ARTICLES ?= 300
bench-encoder: install
	$(BIN)/python bench/encoder.py --articles $(ARTICLES)

# A 200-item RSS feed, Atom feed and news sitemap on loopback against the same pages read as files:
# items/s, fetch and extraction time per page, dates by source, and each failure case's result.
bench-feeds: install
	$(BIN)/python bench/feeds.py --ingest

# Every encoder candidate under this CPU's own instruction set and under AVX2 only (an AMD EPYC Zen 3's),
# rounds alternating; needs gcc and a CPU with the cpuid_fault flag (bench/isa/cpuid_mask.c says why).
bench-encoder-isa: $(VENV)/.bench-installed
	$(BIN)/python bench/encoder_isa.py --articles $(ARTICLES)

lint: install
	$(BIN)/ruff check rag tests bench
