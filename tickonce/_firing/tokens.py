"""Unique tokens for the fire path's plans and running slots.

A fire makes two of them, so they are cheap: a random prefix drawn once per process (again in
a forked child) and a counter, instead of a ``uuid4`` each (os.urandom per call showed in the
profile of a busy scheduler).
"""

from __future__ import annotations

import itertools
import os
import secrets

_prefix = secrets.token_hex(6)
_counter = itertools.count()


def _reseed() -> None:
    global _prefix, _counter
    _prefix, _counter = secrets.token_hex(6), itertools.count()


os.register_at_fork(after_in_child=_reseed)


def token() -> str:
    """A token unique across processes and restarts (random prefix) and within one (counter)."""
    return f"{_prefix}{next(_counter):x}"
