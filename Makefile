VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lint test bench

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'

lint:
	$(VENV)/bin/ruff check services tests
	$(VENV)/bin/ruff format --check services tests
	$(VENV)/bin/mypy

test:
	$(VENV)/bin/pytest -ra

bench:
	$(PY) -m bench
