# Two commands do all the set-up on a fresh machine with only Python 3.11+:
#   make demo   run the pipeline end to end on embedded defaults
#   make test   run the test suite (and lint)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-stress lint unit integration chaos schema browser postgres mariadb pdf-libs bench clean \
	stress-ng \
	kafka kafka-up kafka-down prometheus

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP) pdf-libs
	$(BIN)/dsr demo

# Two processes (pytest-xdist), each taking the next integration test file (the Apache
# Kafka cluster's tests as one) as it is free, then the quick tests (tests/conftest.py).
test: $(STAMP) browser postgres mariadb pdf-libs kafka prometheus lint
	$(BIN)/pytest -q -n 2

# The dashboard's browser test drives Debian's chromium (it is skipped without one).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromium >/dev/null 2>&1 || $(SUDO) apt-get install -y -qq chromium >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null) \
	  || echo "could not install chromium: the dashboard's browser test will be skipped"

# The PostgreSQL tests (ledger, SQL connector) need a server on 127.0.0.1:5432: installed
# from Debian when missing, and started with its data under /var/tmp.
postgres:
	@bash infra/test-postgres.sh

# The alert rules' tests run Debian's promtool (prometheus) and amtool
# (prometheus-alertmanager); they are skipped without them. The packages' services are
# not used.
prometheus:
	@command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 \
	  || $(SUDO) apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null) \
	  || echo "could not install prometheus: the alert rules' tests will be skipped"

# The SQL connector's MariaDB tests start a private server from Debian's mariadb-server
# (they are skipped without one); the package's own service is not used.
mariadb:
	@PATH="$$PATH:/usr/sbin" command -v mariadbd >/dev/null 2>&1 \
	  || $(SUDO) apt-get install -y -qq mariadb-server >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq mariadb-server >/dev/null) \
	  || echo "could not install mariadb-server: the SQL connector's MariaDB tests will be skipped"

# The written letter's PDF (WeasyPrint) needs Debian's Pango; HarfBuzz's subsetter embeds
# the font about three times faster. The Japanese font itself comes from PyPI.
PDF_LIBS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
pdf-libs:
	@$(PYTHON) -c "import ctypes.util as u, sys; sys.exit(not all(map(u.find_library, \
	  ['pango-1.0', 'pangoft2-1.0', 'harfbuzz-subset'])))" \
	  || $(SUDO) apt-get install -y -qq $(PDF_LIBS) >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(PDF_LIBS) >/dev/null) \
	  || echo "could not install $(PDF_LIBS): written letters cannot be printed as PDF"

# The Apache Kafka tests (-m kafka) run a 3-node KRaft cluster from the Apache jars, which
# Maven fetches once into ~/.cache/dsr-pipeline/kafka; without Java or Maven they are skipped.
kafka:
	@bash infra/kafka-cluster.sh fetch \
	  || echo "could not fetch Apache Kafka: the Apache Kafka tests will be skipped"

# A cluster to try the pipeline on: export DSR_KAFKA_BOOTSTRAP=$$(make -s kafka-up)
kafka-up:
	@bash infra/kafka-cluster.sh up

kafka-down:
	@bash infra/kafka-cluster.sh down

unit: $(STAMP)
	$(BIN)/pytest -q -m 'not integration'

integration: $(STAMP)
	$(BIN)/pytest -q -m integration

# The integration tests while stress-ng keeps every core busy: they wait on conditions,
# never on time, so a loaded machine makes them slower, never red.
test-stress: $(STAMP) browser postgres mariadb pdf-libs kafka prometheus stress-ng
	@stress-ng --cpu $$(nproc) --cpu-load 100 --timeout 0 --quiet & load=$$!; \
	  start=$$(date +%s); $(BIN)/pytest -q -m integration; rc=$$?; \
	  kill $$load; wait $$load 2>/dev/null; \
	  echo "integration tests under stress-ng: $$(( $$(date +%s) - start )) s, exit $$rc"; exit $$rc

stress-ng:
	@command -v stress-ng >/dev/null 2>&1 || $(SUDO) apt-get install -y -qq stress-ng >/dev/null \
	  || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq stress-ng >/dev/null)

# A longer soak of the chaos test (part of `make test` with one round): the worker and
# the runner are killed CHAOS_ROUNDS times each, after three broker kills.
CHAOS_ROUNDS ?= 10
chaos: $(STAMP)
	CHAOS_ROUNDS=$(CHAOS_ROUNDS) $(BIN)/pytest -q -x tests/integration/test_chaos.py

lint: $(STAMP)
	$(BIN)/ruff check streams connectors services tests bench
	$(BIN)/mypy
	$(BIN)/mypy --strict -p connectors
	$(BIN)/lint-imports
	$(BIN)/xenon --max-absolute C --max-modules C --max-average A streams services connectors bench
	$(BIN)/dsr schema --check

# The benchmark: the real pipeline against a synchronous baseline; writes bench/results/.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

bench: $(VENV)/.bench-installed postgres
	$(BIN)/python -m bench

schema: $(STAMP)
	$(BIN)/dsr schema

clean:
	rm -rf $(VENV) .dsr .pytest_cache .mypy_cache .ruff_cache
