# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make demo   run the pipeline end to end on embedded defaults
#   make test   run the test suite (and lint)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint unit integration schema browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/dsr demo

test: $(STAMP) browser lint
	$(BIN)/pytest -q

# The dashboard's browser test drives Debian's chromium (it is skipped without one).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -qq chromium >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the dashboard's browser test will be skipped"

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
