"""A request that times out is sent again by the Redis client, and Redis may execute both.
Every write tickonce makes must give the retry the answer the first attempt would have had."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._leadership.fencing import LeaderTerm
from tickonce._leadership.lease import Lease
from tickonce._storage.clients import async_redis, sync_redis
from tickonce._storage.keys import Keys

TIMEOUT = 0.1  # the clients' socket timeout; the stalls below last 1.5 x that
TRIES = 5  # Redis serves the original and the retry in either order: try both often enough


def work() -> None: ...


@pytest.fixture
def settings(private_redis: RedisServer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(private_redis, lease_ttl_seconds=1.0, redis_timeout_seconds=TIMEOUT)


async def test_a_retried_lease_acquisition_leads(
    private_redis: RedisServer, settings: Settings, prefix: str
) -> None:
    keys = Keys(prefix)
    client = async_redis(settings, timeout=TIMEOUT)
    raw = private_redis.client()
    try:
        for _ in range(TRIES):
            lease = Lease(client, keys, "me", ttl_ms=60_000)
            stall = private_redis.stall(1.5 * TIMEOUT)
            await asyncio.sleep(0.02)
            epoch = await lease.acquire()
            stall.join()
            holder = raw.get(keys.lease)
            assert holder is not None
            assert epoch is not None and holder == lease.token, (
                "the lease is held by a token its contender does not know it has"
            )
            assert epoch == int(raw.get(keys.epoch) or 0), "one acquisition, one epoch"
            raw.delete(keys.lease)
    finally:
        await client.aclose()


def test_a_retried_job_store_write_is_not_a_conflict(
    private_redis: RedisServer, settings: Settings, prefix: str
) -> None:
    keys = Keys(prefix)
    raw = private_redis.client()
    epoch = int(raw.incr(keys.epoch))
    store = FencedRedisJobStore(
        sync_redis(settings), keys, LeaderTerm(epoch, float("inf"), lambda: 0.0)
    )
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(store)
    scheduler.start(paused=True)
    try:
        for n in range(TRIES):
            stall = private_redis.stall(1.5 * TIMEOUT, after=0.0)
            time.sleep(0.02)
            scheduler.add_job(work, "interval", seconds=60, id=f"added-{n}")
            stall.join()
            stall = private_redis.stall(1.5 * TIMEOUT, after=0.0)
            time.sleep(0.02)
            scheduler.remove_job(f"added-{n}")
            stall.join()
        assert raw.hlen(keys.jobs) == 0
    finally:
        scheduler.shutdown(wait=False)
