"""BURST_JOBS no-op jobs sharing every fire time (every 20 s on the minute's grid), each with
the default misfire grace: a burst due at one instant. Only for JOBS_MODULES of scheduler
processes (importing it registers the jobs)."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from tickonce._jobs.registry import job

EVERY_SECONDS = 20
_START = datetime(2026, 1, 1, tzinfo=UTC)


async def _noop() -> None: ...


for _n in range(int(os.environ.get("BURST_JOBS", "0"))):
    job("interval", seconds=EVERY_SECONDS, start_date=_START, id=f"burst-{_n:05d}")(_noop)
