VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lint test bench bench-peers

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'

lint:
	$(VENV)/bin/ruff check tickonce services tests bench examples
	$(VENV)/bin/ruff format --check tickonce services tests bench examples
	$(VENV)/bin/mypy
	MYPYPATH=examples $(VENV)/bin/mypy --strict -p myapp
	$(VENV)/bin/mypy --strict examples/recipe/main.py

test:
	$(VENV)/bin/pytest -ra

bench:
	$(PY) -m bench

# Not part of `make test`: installs each peer system in .peers/ and Debian's redis-server and
# postgresql when missing, then writes bench/PEERS.md (about 20 minutes).
bench-peers:
	test -x $(PY) || $(MAKE) install
	$(PY) -m bench.peers
