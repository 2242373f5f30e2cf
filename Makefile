VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lint docs test bench bench-peers

install:
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'

lint:
	$(VENV)/bin/ruff check tickonce services tests bench examples docs/examples
	$(VENV)/bin/ruff format --check tickonce services tests bench examples docs/examples
	$(VENV)/bin/mypy
	MYPYPATH=examples $(VENV)/bin/mypy --strict -p myapp
	$(VENV)/bin/mypy --strict examples/recipe/main.py docs/examples/job_options.py docs/examples/dropin_calls.py

docs:
	$(VENV)/bin/mkdocs build --strict --site-dir build/site

test:
	$(VENV)/bin/pytest -ra

bench:
	$(PY) -m bench

# Not part of `make test`: installs each peer system in .peers/ and Debian's redis-server and
# postgresql when missing, then writes bench/PEERS.md (about 20 minutes).
bench-peers:
	test -x $(PY) || $(MAKE) install
	$(PY) -m bench.peers
