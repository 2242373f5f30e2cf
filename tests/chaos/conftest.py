"""Chaos tests: real scheduler (and gunicorn) processes under faults; bounded in time."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.chaos, pytest.mark.processes]
