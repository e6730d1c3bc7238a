# rlpipe: `make run` (the CPU demo) and `make test` (the whole suite) install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlpipe-installed

.PHONY: install run test test-fast lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake

test: $(STAMP)
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/pytest tests/test_lint.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_ppo.py
	$(BIN)/python benchmarks/bench_qlearn.py

clean:
	rm -rf runs results logs .snakemake
