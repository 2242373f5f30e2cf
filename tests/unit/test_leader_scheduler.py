"""The leader's APScheduler after shutdown: a wakeup queued before it stopped does nothing,
even when the job store is failing (the leader stepped down because Redis stopped answering)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import redis
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore

from services.core.scheduling import LeaderScheduler


def tick() -> None: ...


class UnreachableStore(MemoryJobStore):  # type: ignore[misc]
    """A job store whose reads fail as the Redis one does while Redis is out of reach."""

    def get_due_jobs(self, now: datetime) -> list[Job]:
        raise redis.ConnectionError("Redis is not answering")


async def test_a_wakeup_queued_before_shutdown_processes_nothing() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    scheduler = LeaderScheduler(
        on_not_leader=lambda reason: None,
        retry_seconds=0.1,
        jobstores={"default": UnreachableStore()},
    )
    scheduler.add_job(tick, "interval", seconds=60, id="tick")
    scheduler.start()
    await asyncio.sleep(0.05)
    scheduler.shutdown(wait=False)  # queued on the loop
    scheduler.wakeup()  # queued after it: a job change just before the leader stepped down
    await asyncio.sleep(0.2)
    assert not errors, f"the wakeup after shutdown failed: {errors[0].get('exception')!r}"
