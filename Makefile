# Quick start: `make preview STACK=staging` and `make test` (README). Both create the virtualenv
# and install what they need on a fresh machine.
SHELL := /bin/bash
STACK ?= staging
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHECKOV_STAMP := .venv-checkov/.installed-3.3.30
NODE_TOOLS_STAMP := tools/crd-validate/node_modules/.installed
WORKFLOW_TOOLS_STAMP := $(VENV)/.workflow-tools-installed
EDGE_TOOLS_STAMP := $(VENV)/.edge-tools-installed
BACKUP_TOOLS_STAMP := $(VENV)/.backup-tools-installed
MONITORING_TOOLS_STAMP := $(VENV)/.monitoring-tools-installed

.PHONY: preview test lint typecheck unit bench clean

## Checkov lives in its own virtualenv: it pins a `packaging` that breaks pulumi.
$(CHECKOV_STAMP): scripts/install-checkov.sh
	bash scripts/install-checkov.sh

## Node.js (Debian's, where missing) and tools/crd-validate's locked packages, for the CRD checks
$(NODE_TOOLS_STAMP): scripts/install-node-tools.sh tools/crd-validate/package.json tools/crd-validate/package-lock.json
	bash scripts/install-node-tools.sh

## shellcheck and jq (Debian's, where missing): actionlint checks the workflows' run: scripts
## with shellcheck; the environment script the tests run needs jq
$(WORKFLOW_TOOLS_STAMP): scripts/install-workflow-tools.sh
	bash scripts/install-workflow-tools.sh

## nginx and wrk (Debian's, where missing): the edge tests run the rendered nginx configuration
## on loopback; bench/edge.py measures it with wrk
$(EDGE_TOOLS_STAMP): scripts/install-edge-tools.sh
	bash scripts/install-edge-tools.sh

## PostgreSQL and Redis programs (Debian's, where missing): the backup program's tests run a
## real PostgreSQL and redis-server on loopback; bench/backups.py dumps and restores 1 GB
$(BACKUP_TOOLS_STAMP): scripts/install-backup-tools.sh
	bash scripts/install-backup-tools.sh

## Prometheus's tools (Debian's, where missing): promtool checks and unit-tests the alert rules
## and prometheus.yml, amtool checks Alertmanager's routes, blackbox_exporter its modules
$(MONITORING_TOOLS_STAMP): scripts/install-monitoring-tools.sh
	bash scripts/install-monitoring-tools.sh

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

## Offline preview of one stack (no cloud, no Pulumi CLI): tree on stdout, build/$(STACK)/plan.json
preview: $(STAMP)
	$(PY) -m tools.preview $(STACK)

## The whole test suite: lint, type check, then pytest
test: lint typecheck unit

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP) $(CHECKOV_STAMP) $(NODE_TOOLS_STAMP) $(WORKFLOW_TOOLS_STAMP) $(EDGE_TOOLS_STAMP) $(BACKUP_TOOLS_STAMP) $(MONITORING_TOOLS_STAMP)
	$(VENV)/bin/pytest

## Benchmarks (not part of the tests: they print ratios measured in one run)
bench: $(STAMP) $(EDGE_TOOLS_STAMP) $(BACKUP_TOOLS_STAMP)
	$(PY) bench/preview.py
	$(PY) bench/edge.py
	$(PY) bench/backups.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
