"""Fifty 1-second no-op jobs: load for chaos tests (each still checked for exactly once)."""

from __future__ import annotations

from tickonce._jobs.registry import job

LOAD_JOBS = [f"load-{n:02d}" for n in range(50)]


async def _noop() -> None: ...


for _job_id in LOAD_JOBS:
    job("interval", seconds=1, id=_job_id)(_noop)
