"""Bodies for the body pool's own tests (registers no jobs)."""

from __future__ import annotations


def noop() -> None: ...
