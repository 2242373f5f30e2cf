"""A version that does not define a job leads for a while, then one that does leads again (a
rollback, or a deploy rolled forward after one): the job comes back as it was. A one-off job
that fired does not run again; a paused job is still paused."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import redis
import redis.asyncio as aioredis

from tests.support.ledger_checks import read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tests.support.upgrade_jobs import ONCE, runs_key
from tickonce._control.channel import CommandSender
from tickonce._control.reads import read_job
from tickonce._storage.keys import Keys

WITH_ONCE = "tests.support.probe_jobs,tests.support.upgrade_jobs"  # defines `once`
WITHOUT = "tests.support.probe_jobs"
WITH_GREET = "tests.support.probe_jobs,tests.support.control_jobs"  # defines `greet`


def lead_alone(
    processes: Processes, client: redis.Redis, prefix: str, name: str, code: str
) -> None:
    """Start a scheduler running ``code``, let it lead until it fired the probe three times
    (its start-up sync came before), then stop it."""
    process = processes.scheduler(name, JOBS_MODULES=code)
    pid = f":{process.pid}:"
    wait_until(
        lambda: sum(pid in e.runner for e in read_evidence(client, prefix).ledger) >= 3,
        30,
        f"{name} leading",
    )
    assert processes.terminate(name) == 0


def test_a_one_off_job_that_fired_does_not_run_after_a_version_without_it_led(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    once_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=4)
    processes.env.update(REDIS_URL=redis_server.url, UPGRADE_ONCE_AT=once_at.isoformat())
    runs = runs_key(prefix)

    def once_runs() -> int:
        return sum(json.loads(item)["job"] == ONCE for item in client.lrange(runs, 0, -1))

    processes.scheduler("v1", JOBS_MODULES=WITH_ONCE)
    wait_until(lambda: once_runs() == 1, 30, "the one-off job's run")
    assert processes.terminate("v1") == 0
    lead_alone(processes, client, prefix, "v2", WITHOUT)
    lead_alone(processes, client, prefix, "v1-again", WITH_ONCE)
    assert once_runs() == 1, "the one-off job ran again after the version without it led"
    ledger = read_evidence(client, prefix, ONCE).ledger
    assert [e.status for e in ledger] == ["succeeded"], ledger


def test_a_paused_job_is_still_paused_after_a_version_without_it_led_alone(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    keys = Keys(prefix)
    processes.env.update(REDIS_URL=redis_server.url)
    processes.scheduler("new", JOBS_MODULES=WITH_GREET)
    wait_until(lambda: client.hexists(keys.jobs, "greet"), 30, "the new code's job")

    async def pause() -> None:
        async with aioredis.Redis.from_url(redis_server.url, decode_responses=True) as redis_:
            paused = await CommandSender(redis_, keys).send("pause", "greet", timeout=10)
        assert paused.code == 200 and paused.job is not None and paused.job["paused"], paused

    asyncio.run(pause())
    assert processes.terminate("new") == 0
    lead_alone(processes, client, prefix, "old", WITHOUT)
    lead_alone(processes, client, prefix, "new-again", WITH_GREET)

    async def stored() -> object:
        async with aioredis.Redis.from_url(redis_server.url) as raw:
            return await read_job(raw, keys, "greet")

    job = asyncio.run(stored())
    assert job is not None, "greet is gone"
    assert job.next_run_time is None, "greet came back unpaused"  # type: ignore[attr-defined]
