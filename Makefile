# The two commands of README.md: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test lint typecheck services bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## run: install into .venv and serve on 127.0.0.1:8080 with the embedded store in ./data
run: $(STAMP)
	$(BIN)/eventlog serve --host 127.0.0.1 --port 8080 --data-dir ./data

## services: provision the real services the test suite talks to
services:
	bash scripts/provision.sh

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

## test: lint, type checks and the whole suite against real services
test: $(TEST_STAMP) services lint typecheck
	$(BIN)/pytest

## bench: the ingest benchmark (every figure and its script: docs/performance.md)
bench: $(STAMP)
	$(BIN)/python -m bench.ingest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
