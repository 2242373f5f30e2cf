"""The app's two jobs. The scheduler service imports this module (JOBS_MODULES=myapp.jobs) and
fires them, each fire time once, however many api and scheduler containers run."""

from __future__ import annotations

import functools
import logging

import redis

from tickonce import current_run, job

logger = logging.getLogger(__name__)

BEATS = "myapp:beats"  # scheduled time -> how many times its body ran


@functools.cache
def store() -> redis.Redis:
    """One client per worker process, made on first use and reused by every run (the job reads
    the same REDIS_URL as tickonce; your jobs would use your own stores)."""
    from tickonce import Settings

    return redis.Redis.from_url(Settings().redis_url, decode_responses=True)


@job("interval", seconds=2, id="myapp-heartbeat")
def heartbeat() -> None:
    """Count this fire time: the app's /beats route shows every count is 1."""
    store().hincrby(BEATS, current_run().scheduled_at.isoformat(), 1)


@job("cron", minute="*", id="myapp-report", catch_up="skip", timeout=30)
async def report() -> None:
    """A once-a-minute report; fire times missed while no scheduler ran are skipped."""
    logger.info("report for %s", current_run().scheduled_at.isoformat())
