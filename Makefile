# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make demo   run the pipeline end to end on embedded defaults
#   make test   run the test suite (and lint)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit integration schema clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dsr demo

test: $(STAMP) lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q -m 'not integration'

integration: $(STAMP)
	$(BIN)/pytest -q -m integration

lint: $(STAMP)
	$(BIN)/ruff check streams connectors services tests
	$(BIN)/mypy
	$(BIN)/dsr schema --check

schema: $(STAMP)
	$(BIN)/dsr schema

clean:
	rm -rf $(VENV) .dsr .pytest_cache .mypy_cache .ruff_cache
