"""Jobs as plain functions: a trigger and options on ``@job``. List this module in JOBS_MODULES
(e.g. ``JOBS_MODULES=myapp.jobs``) for the scheduler and the api to register its jobs."""

from __future__ import annotations

import logging
import time

from tickonce import current_run, job

logger = logging.getLogger(__name__)


@job("cron", minute="*/15", timezone="Europe/Berlin")
async def refresh_prices() -> None:
    """Every 15 minutes, Berlin time. One run at a time across the cluster (the default
    max_instances=1): a fire time that comes while a run goes on is recorded as skipped."""
    run = current_run()  # job_id, scheduled_at (aware UTC), epoch, runner
    logger.info("prices for %s, run by %s", run.scheduled_at.isoformat(), run.runner)


@job("interval", seconds=30, id="cleanup", misfire_grace_time=10, start_paused=True)
def cleanup() -> None:
    """Every 30 s under the id "cleanup"; a fire time more than 10 s late is recorded missed.
    Added paused the first time it is scheduled: it runs once resumed (API or status page)."""
    logger.info("cleaning up")


@job("cron", hour=6, catch_up="skip", kwargs={"recipients": "ops@example.com"})
def daily_report(recipients: str) -> None:
    """Daily at 06:00 UTC; fire times missed while no scheduler ran are skipped, not run late.
    The kwargs are stored with the job and must fit the function's signature."""
    logger.info("report to %s", recipients)


@job("interval", minutes=5, timeout=60, max_instances=2)
def sync_accounts() -> None:
    """Stopped after 60 s and recorded ``failed: timeout``; up to two runs at once."""
    synced = 0
    try:
        for _ in range(100):
            time.sleep(0.1)  # stands for a call to another service
            synced += 1
    finally:  # runs also when the body is stopped at its timeout
        logger.info("synced %d accounts", synced)
