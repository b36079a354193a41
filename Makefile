# The two commands of the README:
#   make run    set up .venv if missing and run the collector on collector.yaml
#   make test   set up .venv if missing and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= collector.yaml
STAMP := $(VENV)/.installed

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

test: $(STAMP) peers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Real peers the tests run against that do not come from PyPI (see tests/peers/README.md).
peers:
	@sh tests/peers/install.sh

lint: $(STAMP)
	$(BIN)/python -m pip install --quiet ruff mypy
	$(BIN)/ruff check collector plugins tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info
