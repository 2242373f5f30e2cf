"""tickonce: the same jobs, on whole seconds (so that all of them are due together), with the
scheduled time tickonce gives the body."""

from __future__ import annotations

from bench.peers.apps.record import interval, job_ids, record
from tickonce import current_run, job


async def _body() -> None:
    run = current_run()
    record(run.job_id, run.scheduled_at.timestamp())


for _job in job_ids():
    job("cron", second=f"*/{interval()}", id=_job)(_body)
