"""The two shipped example jobs. Add your own in any module and list it in JOBS_MODULES."""

from __future__ import annotations

import functools
import json
import logging
import time
from datetime import UTC, datetime

import redis.asyncio as aioredis

from tickonce import current_run, job
from tickonce._config.settings import get_settings
from tickonce._storage.clients import async_redis
from tickonce._storage.keys import Keys

logger = logging.getLogger(__name__)

BEATS_KEPT = 1000


@job("interval", seconds=1, max_instances=2)
def tick() -> None:
    """The classic APScheduler sample: every second, print the time; this one then works 3 s.

    With two instances allowed, every third fire time finds both busy and is recorded as
    skipped (max_instances) in the ledger.
    """
    logger.info("Tick! The time is: %s", datetime.now(UTC).isoformat())
    time.sleep(3)


@job("interval", seconds=1)
async def heartbeat() -> None:
    """Every second, record the beat (scheduled time, runner, epoch) in a short Redis list.

    The list is the job's own record of what ran, independent of the run ledger.
    """
    run = current_run()
    settings = get_settings()
    beat = json.dumps(
        {"scheduled_at": run.scheduled_at.isoformat(), "runner": run.runner, "epoch": run.epoch}
    )
    key = Keys.of(settings).example("heartbeat")
    async with store().pipeline(transaction=True) as pipe:
        pipe.lpush(key, beat)
        pipe.ltrim(key, 0, BEATS_KEPT - 1)
        await pipe.execute()


@functools.cache
def store() -> aioredis.Redis:
    """One client per worker process, made at the first run and reused by every later one (a
    worker runs its async bodies on one event loop). It finds Redis as tickonce does: at
    REDIS_URL, or the master through REDIS_SENTINELS, followed through failovers."""
    return async_redis(get_settings())
