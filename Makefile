# Quick start: `make preview STACK=staging` and `make test` (README). Both create the virtualenv
# and install what they need on a fresh machine.
SHELL := /bin/bash
STACK ?= staging
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: preview test lint typecheck unit bench clean

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

unit: $(STAMP)
	$(VENV)/bin/pytest

## Benchmarks (not part of the tests: they print ratios measured in one run)
bench: $(STAMP)
	$(PY) bench/preview.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
