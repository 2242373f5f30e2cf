"""Chaos tests: real scheduler (and gunicorn) processes under faults; bounded in time.

Every test here is marked ``chaos`` and ``processes`` by tests/conftest.py (DIRECTORY_MARKERS):
pytest ignores ``pytestmark`` in a conftest.py.
"""
