# The commands of the README:
#   make run    set up .venv if missing and run the collector on collector.yaml
#   make test   set up .venv if missing and run the whole test suite
#   make lint   ruff and mypy, as CI runs them before the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= collector.yaml
STAMP := $(VENV)/.installed
LINT_STAMP := $(VENV)/.lint-installed
LINT_PATHS := collector plugins tests bench

.PHONY: run test peers validate lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/collector run -c $(CONFIG)

validate: $(STAMP)
	$(BIN)/collector validate -c $(CONFIG)

# Three pytest-xdist workers (also in CI): most tests wait on subprocesses, sockets and retry timers, not on the
# CPU. `make test PYTEST_ARGS="-n 0"` runs the suite in one process.
PYTEST_ARGS ?= -n 3 --dist loadgroup

test: $(STAMP) peers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Real peers the tests run against that do not come from PyPI (see tests/peers/README.md).
peers:
	@sh tests/peers/install.sh

# ruff (lint and format) over every tree of Python, mypy over collector/ and plugins/ ([tool.mypy]).
# The tools are the `lint` extra's pinned versions, installed here: a clean clone needs nothing else.
$(LINT_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info
