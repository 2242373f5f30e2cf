"""The leader's APScheduler after shutdown: a wakeup queued before it stopped does nothing,
even when its wakeups are failing (the leader stepped down because Redis stopped answering)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import redis
from apscheduler.job import Job
from apscheduler.jobstores.memory import MemoryJobStore

from tickonce._firing.scheduler import LeaderScheduler


def tick() -> None: ...


class UnreachablePath:
    """A fire path whose wakeups fail as they do while Redis is out of reach."""

    def wakeup(self, now: datetime) -> datetime | None:
        raise redis.ConnectionError("Redis is not answering")

    def end_wakeup(self) -> None: ...

    def run_now(self, job: Job, command_id: str, requested_at: datetime) -> str:
        raise redis.ConnectionError("Redis is not answering")


async def test_a_wakeup_queued_before_shutdown_processes_nothing() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    scheduler = LeaderScheduler(
        path=UnreachablePath(),
        on_not_leader=lambda reason: None,
        retry_seconds=0.1,
        jobstores={"default": MemoryJobStore()},
    )
    scheduler.add_job(tick, "interval", seconds=60, id="tick")
    scheduler.start()
    await asyncio.sleep(0.05)
    scheduler.shutdown(wait=False)  # queued on the loop
    scheduler.wakeup()  # queued after it: a job change just before the leader stepped down
    await asyncio.sleep(0.2)
    assert not errors, f"the wakeup after shutdown failed: {errors[0].get('exception')!r}"
