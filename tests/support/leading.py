"""An in-process contender leading for a while: the shortest way to run a leader in a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

import redis
from apscheduler.job import Job

from tickonce._config.settings import Settings
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._firing.scheduler import LeaderScheduler
from tickonce._jobs.registry import Registry
from tickonce._leadership.contender import Contender
from tickonce._leadership.fencing import LeaderTerm
from tickonce._storage.keys import Keys


async def lead_for(settings: Settings, jobs: Registry, seconds: float) -> None:
    """Run a scheduler-mode contender of ``jobs`` for ``seconds``, then stop it gracefully."""
    await lead_until(settings, jobs, lambda: False, seconds)


async def lead_until(
    settings: Settings, jobs: Registry, done: Callable[[], bool], timeout: float
) -> None:
    """Run a scheduler-mode contender of ``jobs`` until ``done()`` (checked every 0.2 s) or
    ``timeout`` seconds, then stop it gracefully."""
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    try:
        for _ in range(round(timeout / 0.2)):
            if done():
                break
            await asyncio.sleep(0.2)
    finally:
        await contender.stop()
        await running


class IdlePath:
    """The fire path of a leader started paused, which never fires (not under test)."""

    def wakeup(self, now: datetime) -> datetime | None:
        return None

    def end_wakeup(self) -> None: ...

    def run_now(self, job: Job, command_id: str, requested_at: datetime) -> str:
        raise AssertionError("a test's paused leader runs nothing")


def paused_leader(
    client: redis.Redis,
    keys: Keys,
    term: LeaderTerm,
    loop: asyncio.AbstractEventLoop | None = None,
) -> LeaderScheduler:
    """The scheduler of a leader holding ``term``, on the fenced job store, started paused
    (nothing fires): for job changes and their fencing. ``loop``: where none is running."""
    options = {"event_loop": loop} if loop is not None else {}
    scheduler = LeaderScheduler(
        path=IdlePath(),
        on_not_leader=lambda reason: None,
        retry_seconds=0.1,
        jobstores={"default": FencedRedisJobStore(client, keys, term)},
        **options,
    )
    scheduler.start(paused=True)
    return scheduler
