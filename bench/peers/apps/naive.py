"""The naive recipe: APScheduler 3's AsyncIOScheduler in the process (as FastAPI's lifespan
starts it in every worker), every job on whole seconds. The scheduled time is APScheduler's,
from its executed event."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bench.peers.apps.record import interval, job_ids, record


async def body() -> float:
    return time.time()


def recorded(event: JobExecutionEvent) -> None:
    record(event.job_id, event.scheduled_run_time.timestamp(), started=event.retval)


async def main() -> None:
    scheduler = AsyncIOScheduler()
    for job in job_ids():
        scheduler.add_job(body, "cron", second=f"*/{interval()}", id=job)
    scheduler.add_listener(recorded, EVENT_JOB_EXECUTED)
    scheduler.start()
    stop: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await stop


if __name__ == "__main__":
    asyncio.run(main())
