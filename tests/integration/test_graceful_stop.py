"""Stopping a leader: the lease goes at once, running jobs finish within the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import redis

from services.core.contender import Contender
from services.core.keys import Keys
from services.core.registry import Registry
from services.core.settings import Settings
from tests.support.ledger_checks import read_evidence
from tests.support.redis_server import RedisServer


async def test_stop_releases_the_lease_first_and_lets_the_running_job_finish(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    jobs = Registry()
    started = asyncio.Event()
    lease_held_when_job_ended: list[bool] = []

    @jobs.job("interval", seconds=1, id="slow")
    async def slow() -> None:
        started.set()
        await asyncio.sleep(1.5)
        lease_held_when_job_ended.append(bool(client.exists(Keys(prefix).lease)))

    @jobs.job("interval", seconds=1, id="endless")
    async def endless() -> None:
        await asyncio.sleep(60)

    settings = make_settings(redis_server, jobs_modules=[], shutdown_grace_seconds=3.0)
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    async with asyncio.timeout(15):
        await started.wait()
    await contender.stop()
    await running

    assert lease_held_when_job_ended == [False], "the lease is released before jobs drain"
    [slow_run] = read_evidence(client, prefix, "slow").ledger
    assert slow_run.status == "succeeded", "a job running at stop finishes within the grace"
    endless_runs = read_evidence(client, prefix, "endless").ledger
    assert [(run.status, run.reason) for run in endless_runs] == [("failed", "cancelled")], (
        "a job still running when the grace period ends is cancelled and recorded"
    )
