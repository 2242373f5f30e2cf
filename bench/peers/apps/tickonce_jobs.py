"""tickonce: the same jobs, every second, with the scheduled time tickonce gives the body."""

from __future__ import annotations

from bench.peers.apps.record import job_ids, record
from services.core import current_run, job


async def _body() -> None:
    run = current_run()
    record(run.job_id, run.scheduled_at.timestamp())


for _job in job_ids():
    job("interval", seconds=1, id=_job)(_body)
