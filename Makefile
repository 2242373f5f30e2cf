VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lint test bench bench-peers

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'

lint:
	$(VENV)/bin/ruff check services tests bench examples
	$(VENV)/bin/ruff format --check services tests bench examples
	$(VENV)/bin/mypy
	MYPYPATH=examples $(VENV)/bin/mypy --strict -p myapp
	$(VENV)/bin/mypy --strict examples/recipe/main.py

test:
	$(VENV)/bin/pytest -ra

bench:
	$(PY) -m bench

bench-peers:
	$(PY) -m bench.peers
