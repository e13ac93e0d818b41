# Two commands do all set-up: `make run` and `make test`.
VENV := .venv
BIN := $(VENV)/bin
# Everything the service loads ships in installed packages; never reach for a model hub.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test bench bench-load bench-crash bench-faiss bench-qdrant bench-encoder bench-encoder-isa lint

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	# torch 2.13.0 is the CPU wheel pip finds locally; installing it first keeps CUDA packages out.
	$(BIN)/pip install --quiet torch==2.13.0
	# [llm]: llama-cpp-python builds llama.cpp from source (~4 min); the tests run it for real.
	# [qdrant]: qdrant-client, whose embedded mode the tests use.
	$(BIN)/pip install --quiet -e '.[test,llm,qdrant]'
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

# Every encoder candidate under this CPU's own instruction set and under AVX2 only (an AMD EPYC Zen 3's),
# rounds alternating; needs gcc and a CPU with the cpuid_fault flag (bench/isa/cpuid_mask.c says why).
bench-encoder-isa: $(VENV)/.bench-installed
	$(BIN)/python bench/encoder_isa.py --articles $(ARTICLES)

lint: install
	$(BIN)/ruff check rag tests bench
