# rlpipe: `make run` (the CPU demo) and `make test` (the whole suite) install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rlpipe-installed
PROFILE_HOME := $(or $(XDG_CONFIG_HOME),$(HOME)/.config)/snakemake

.PHONY: install run test test-fast lint bench bench-slurm gpu-check clean

# The venv is (re)installed when pyproject.toml's *content* differs from the one it was
# installed from (the stamp holds its sha256): a fresh clone's new mtimes alone change nothing.
# Then `--profile local|slurm|runpod` is made to work from anywhere: Snakemake looks for
# profiles by name in ~/.config/snakemake, where this links them (an existing directory of
# that name is never replaced).
install:
	@want=$$(sha256sum pyproject.toml | cut -d' ' -f1); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  set -e; \
	  test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
	  $(BIN)/python -m pip install -q --upgrade pip; \
	  $(BIN)/python -m pip install -q -e '.[test]'; \
	  echo "$$want" > $(STAMP); \
	fi
	@mkdir -p "$(PROFILE_HOME)"; \
	for p in local slurm runpod; do \
	  if [ ! -e "$(PROFILE_HOME)/$$p" ] || [ -L "$(PROFILE_HOME)/$$p" ]; then \
	    ln -sfn "$(CURDIR)/profiles/$$p" "$(PROFILE_HOME)/$$p"; \
	  else \
	    echo "make: $(PROFILE_HOME)/$$p is not a link; use --profile profiles/$$p"; \
	  fi; \
	done

run: install
	$(BIN)/snakemake

test: install
	$(BIN)/pytest

test-fast: install
	$(BIN)/pytest -m "not slow"

lint: install
	$(BIN)/pytest tests/test_lint.py

# CleanRL's ppo_atari_envpool.py is not on PyPI: the side-by-side bench reads it from a
# checkout (RLPIPE_CLEANRL=PATH, e.g. a clone of vwxyzjn/cleanrl) and is skipped without one.
bench: install
	$(BIN)/python benchmarks/bench_ppo.py
	$(BIN)/python benchmarks/bench_qlearn.py
	$(BIN)/python benchmarks/bench_segments.py
	$(BIN)/python benchmarks/bench_planning.py
	$(BIN)/python benchmarks/bench_plan_accuracy.py
	@if [ -n "$$RLPIPE_CLEANRL" ]; then $(BIN)/python benchmarks/bench_vs_cleanrl.py; \
	else echo "bench_vs_cleanrl: skipped (set RLPIPE_CLEANRL to a CleanRL checkout)"; fi

# Prove the GPU path (benchmarks/gpu_check.py; on a machine without a GPU its CPU stages).
# On a bare GPU machine: bash .gpu/install.sh && python3 benchmarks/gpu_check.py
gpu-check: install
	$(BIN)/python benchmarks/gpu_check.py

# The demo under the tests' single-node SLURM cluster against the demo run locally (root, apt).
bench-slurm: install
	$(BIN)/python benchmarks/bench_slurm.py

clean:
	rm -rf runs results logs .snakemake
