# RadViewer: `make run` starts the app on the embedded default; `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help setup setup-dev static run test lint migrate demo demo-model starter-model clean-var benchmarks

help:
	@echo "make run    - set up and run RadViewer at http://127.0.0.1:$(PORT) (embedded default)"
	@echo "make test   - set up and run ruff, import-linter and the whole test suite"
	@echo "make starter-model - retrain the shipped starter model on ../shared/data/real-cxr (15-50 min on 2 CPU cores)"
	@echo "make demo-model    - train a model on synthetic phantoms (demos and tests only)"

$(VENV)/bin/python:
	@scripts/check_prereqs.sh
	@PYTHON=$$(scripts/check_prereqs.sh --print-python) && $$PYTHON -m venv $(VENV)
	@$(PIP) install -qq --upgrade pip

# The stamps hold a hash of pyproject.toml so a changed dependency list reinstalls.
$(VENV)/.stamp-run: pyproject.toml | $(VENV)/bin/python
	@echo "installing Python packages into $(VENV) (a few minutes the first time)..."
	@$(PIP) install -qq -e '.[s3]'
	@sha256sum pyproject.toml > $@

$(VENV)/.stamp-dev: pyproject.toml | $(VENV)/bin/python
	@echo "installing Python packages into $(VENV) (a few minutes the first time)..."
	@$(PIP) install -qq -e '.[dev,s3,ray,bench]'
	@sha256sum pyproject.toml > $@
	@sha256sum pyproject.toml > $(VENV)/.stamp-run

static/vendor/.stamp: package.json package-lock.json
	@scripts/check_prereqs.sh --npm
	npm ci --no-audit --no-fund --loglevel=error
	scripts/vendor_static.sh
	@touch $@

setup: $(VENV)/.stamp-run static/vendor/.stamp
setup-dev: $(VENV)/.stamp-dev static/vendor/.stamp

migrate: setup
	$(PY) manage.py migrate --noinput

demo: migrate
	@$(PY) manage.py create_demo_accounts
	@$(PY) manage.py ensure_starter_model

# The last process of the Procfile prints the login box once web and workers answer.
# scripts/supervise.py restarts a process that crashes (honcho stopped them all).
run: demo
	@echo "starting web, workers and beat at http://127.0.0.1:$(PORT)/ (the login box follows when all are up)"
	@RADVIEWER_PORT=$(PORT) $(PY) scripts/supervise.py deploy/Procfile.embedded \
		--metrics-dir "$${RADVIEWER_VAR_DIR:-var}/prometheus-multiproc"

demo-model: migrate
	$(PY) manage.py ensure_demo_model

starter-model: migrate
	$(PY) manage.py build_starter_model
	$(PY) manage.py model_card
	$(PY) manage.py build_drift_reference --starter

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

test: lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

benchmarks: setup-dev
	$(PY) benchmarks/latency.py
	$(PY) benchmarks/predictor_memory.py

clean-var:
	rm -rf var/
