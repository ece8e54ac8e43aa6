# `make dev`  : set up and run the product on the embedded default (SQLite): `dagster dev` and the
#               HTTP API (`orchestrator serve`, port API_PORT).
# `make test` : set up and run the whole suite (SQLite and the local PostgreSQL).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
API_PORT ?= 8080
export DAGSTER_HOME

.PHONY: install install-bench install-chromium dev test bench chaos lint db-upgrade clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# uv installs what pip would (the same packages and versions, from PyPI) in about 10 s instead of
# 25-35 s; it is a wheel from PyPI itself. Where it cannot be had, pip installs everything.
# --compile-bytecode, as pip does: with PYTHONDONTWRITEBYTECODE set (as on the CI machine) no
# process would write them, and each would compile every module it imports (twice the CPU of a
# Dagster process's start).
PIP_INSTALL = { $(BIN)/python -m pip install --quiet uv && \
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python $(1); } || \
	$(BIN)/python -m pip install --quiet $(1)

$(STAMP): pyproject.toml | $(BIN)/python
	$(call PIP_INSTALL,-e ".[dev]")
	touch $(STAMP)

install: $(STAMP)

BENCH_STAMP := $(VENV)/.installed-bench
# A comma inside $(call ...) would split its argument: ".[dev,bench]" is written with $(comma).
comma := ,
# wrk (Debian's package) is the ingestion benchmark's load generator: C, so it leaves the cores
# to the server it measures.
$(BENCH_STAMP): $(STAMP)
	$(call PIP_INSTALL,-e ".[dev$(comma)bench]")
	command -v wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null || \
		{ echo "install wrk (Debian/Ubuntu: apt-get install wrk)"; exit 1; }
	touch $(BENCH_STAMP)

install-bench: $(BENCH_STAMP)

CHROMIUM_STAMP := $(VENV)/.installed-chromium
# Chromium (Debian's package) is the headless browser of the Dagster UI acceptance test
# (tests/acceptance/test_dagster_ui.py). `make dev` does not need it.
$(CHROMIUM_STAMP): | $(BIN)/python
	command -v chromium >/dev/null 2>&1 || apt-get install -y -q chromium >/dev/null || \
		{ apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || \
		{ echo "install chromium (Debian/Ubuntu: apt-get install chromium)"; exit 1; }
	touch $(CHROMIUM_STAMP)

install-chromium: $(CHROMIUM_STAMP)

$(DAGSTER_HOME)/dagster.yaml:
	mkdir -p $(DAGSTER_HOME)
	cp examples/dagster.dev.yaml $@

db-upgrade: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/orchestrator db upgrade

dev: db-upgrade
	$(BIN)/orchestrator workflows apply examples/workflows
	$(BIN)/orchestrator schedules create --workflow daily-digest --cron '* * * * *' \
		--payload '{"user": "demo"}' --key demo-every-minute
	@echo "Dagster UI: http://127.0.0.1:3000  (DAGSTER_HOME=$(DAGSTER_HOME))"
	@echo "HTTP API:   http://127.0.0.1:$(API_PORT)/openapi.json  (a key: $(BIN)/orchestrator keys create -e default)"
	@# The API runs beside `dagster dev` and stops with it (Ctrl-C, or dagster dev exiting).
	@# /metrics answers only to the operator token: one of its own per `make dev` unless set.
	export ORCHESTRATOR_OPERATOR_TOKEN=$${ORCHESTRATOR_OPERATOR_TOKEN:-$$($(BIN)/python -c \
		'import secrets; print(secrets.token_urlsafe(24))')}; \
	echo "Metrics:    curl -H \"Authorization: Bearer $$ORCHESTRATOR_OPERATOR_TOKEN\" http://127.0.0.1:$(API_PORT)/metrics"; \
	$(BIN)/orchestrator serve --host 127.0.0.1 --port $(API_PORT) & api=$$!; \
	trap 'kill $$api 2>/dev/null' EXIT INT TERM; \
	$(BIN)/dagster dev -w workspace.yaml --host 127.0.0.1 --port 3000

# Tests are handed to the workers one at a time, the longest first (tests/conftest.py,
# LONG_TESTS); tests marked @pytest.mark.xdist_group(name) share a worker.
PYTEST_WORKERS ?= 3
# Bytecode first: where PYTHONDONTWRITEBYTECODE is set (as on the CI machine) no process writes
# it, and each of the ~200 processes a suite starts (daemons, code servers, runs, the CLI) would
# compile every module of ours it imports (~0.3 s of CPU each).
test: install $(CHROMIUM_STAMP)
	$(BIN)/python -m compileall -q -j 0 orchestrator harness bench tests definitions.py >/dev/null
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup

# Benchmarks beside their Dagster baselines, on SQLite and the local PostgreSQL (a fresh database
# per measurement). Prints a table and writes docs/PERFORMANCE.md. BENCH_QUICK=1: ~8 min.
bench: install-bench
	$(BIN)/python -m bench.run_all

# Long fault injection (SIGKILL of the daemon and of the code server; a private PostgreSQL
# stopped for 30 s; schemathesis on the HTTP API; the isolation matrix). Prints a table and
# writes docs/RELIABILITY.md (CHAOS_ONLY=fuzz,isolation: those cases only). ~16 min.
chaos: install-bench
	$(BIN)/python -m bench.chaos

lint: install
	$(BIN)/ruff check orchestrator harness tests bench
	$(BIN)/mypy orchestrator harness

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache *.egg-info
