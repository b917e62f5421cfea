# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow test-notebooks-full lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, the CPU build: otherwise a dependency pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,scverse]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vgfm-bayes demo --out demo_out

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# checks too long for every run: NUTS and torchrun (CI runs them too), and the notebooks in
# full (tens of minutes on 2 cores: too long for CI's budget beside the rest; run them by hand)
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q --runslow -m "slow and not notebooks"

test-notebooks-full: $(STAMP)
	$(BIN)/python -m pytest -q --runslow -m "slow and notebooks"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/vgfm-bayes bench --out bench_out

clean:
	rm -rf $(VENV) demo_out bench_out .pytest_cache .ruff_cache
