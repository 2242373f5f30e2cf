"""Stopping a leader: the lease goes at once, running jobs finish within the grace period."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from services.core.contender import Contender
from services.core.registry import Registry
from services.core.settings import Settings
from tests.support.ledger_checks import read_evidence
from tests.support.redis_server import RedisServer
from tests.support.timeline_jobs import endless, events, slow


async def test_stop_releases_the_lease_first_and_lets_the_running_job_finish(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "bodies.jsonl"
    monkeypatch.setenv("BODY_LOG", str(log))
    jobs = Registry()
    jobs.job("interval", seconds=1, id="slow")(slow)
    jobs.job("interval", seconds=1, id="endless")(endless)

    settings = make_settings(redis_server, jobs_modules=[], shutdown_grace_seconds=3.0)
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    async with asyncio.timeout(15):
        while not events(log, "slow", "start"):  # noqa: ASYNC110 - the body is in a worker
            await asyncio.sleep(0.02)
    await contender.stop()
    await running

    ended = events(log, "slow", "end")
    assert [e["lease_held"] for e in ended] == [False], "the lease is released before jobs drain"
    [slow_run] = read_evidence(client, prefix, "slow").ledger
    assert slow_run.status == "succeeded", "a job running at stop finishes within the grace"
    endless_runs = read_evidence(client, prefix, "endless").ledger
    assert [(run.status, run.reason) for run in endless_runs] == [("failed", "cancelled")], (
        "a job still running when the grace period ends is cancelled and recorded"
    )
