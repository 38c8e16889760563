# plastics — two commands on a fresh machine:
#   make demo   create .venv, install the pinned deps (one pip command), run `plastics demo`
#   make test   the test suite exactly as CI (.ci/run) runs it
# Other targets: install, lint, bench, ui, clean. Variables: PY (python >= 3.11), VENV, PYTEST_ARGS,
# PYTEST_WORKERS (test processes, default 2; 0 = one process).

SHELL := /bin/bash
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# Test worker processes (pytest-xdist). Each test file runs whole on one worker, the longest files
# first (tests/conftest.py): on a 2-core machine 1097 s instead of 1523 s (docs/TESTING.md).
PYTEST_WORKERS ?= 2
# The test command (README and CI use exactly this): services on 127.0.0.1, then the whole suite.
TEST_CMD = .ci/with-services $(BIN)/python -m pytest -ra --durations=15 \
	-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

.PHONY: help venv install demo test lint bench ui clean

help:
	@sed -n '1,5p' Makefile

venv: $(BIN)/python

$(BIN)/python:
	$(PY) -m venv $(VENV)

# One pip command installs the project and every pinned dependency (s3fs and boto3 included).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/plastics demo

test: install
	$(TEST_CMD)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy plastics_core plastics_dagster

bench: install
	$(BIN)/python -m bench

# the instance's dagster.yaml (telemetry off, run-queue limits) is written and the demo ROI test_patch
# registered before the UI first starts. The UI's runs read PLASTICS_IMAGERY; unset, `make ui` uses the
# synthetic demo world (as `plastics demo`): `PLASTICS_IMAGERY=stac make ui` reads Sentinel-2 L1C.
ui: install
	@mkdir -p "$${DAGSTER_HOME:-.dagster_home}"
	export DAGSTER_HOME="$$(cd "$${DAGSTER_HOME:-.dagster_home}" && pwd)" && \
	export PLASTICS_IMAGERY="$${PLASTICS_IMAGERY:-synthetic}" && \
	$(BIN)/python -c 'from plastics_dagster.cli._instance import main; main()' && \
	$(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf .plastics .pytest_cache .mypy_cache .ruff_cache
