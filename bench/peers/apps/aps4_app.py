"""APScheduler 4 (pre-release): an AsyncScheduler on a PostgreSQL data store (SQLAlchemy,
asyncpg) with a Redis event broker, every job on whole seconds. Each instance both schedules and
runs jobs (role ``both``, the default); schedules are shared through the data store, which
leases each to one scheduler at a time. The scheduled time is the job's
``scheduled_fire_time``. SIGTERM stops the scheduler (``stop()``), as an app would on shutdown.
PEERS_LEASE sets ``lease_duration`` (s)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from apscheduler import AsyncScheduler, current_job
from apscheduler.datastores.sqlalchemy import SQLAlchemyDataStore
from apscheduler.eventbrokers.redis import RedisEventBroker
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.ext.asyncio import create_async_engine

from bench.peers.apps.record import interval, job_ids, record


async def body(job: str) -> None:
    record(job, current_job.get().scheduled_fire_time.timestamp())


async def main() -> None:
    data_store = SQLAlchemyDataStore(create_async_engine(os.environ["PEERS_POSTGRES"]))
    broker = RedisEventBroker(os.environ["PEERS_REDIS"], channel=os.environ["PEERS_KEY"])
    options: dict[str, Any] = {}
    if os.environ.get("PEERS_LEASE"):
        options["lease_duration"] = float(os.environ["PEERS_LEASE"])
    async with AsyncScheduler(
        data_store, broker, identity=os.environ["PEERS_INSTANCE"], **options
    ) as scheduler:
        every = f"*/{interval()}"
        for job in job_ids():  # a trigger each: APScheduler 4's triggers keep state
            await scheduler.add_schedule(body, CronTrigger(second=every), id=job, args=(job,))
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, lambda: loop.create_task(scheduler.stop()))
        await scheduler.run_until_stopped()


if __name__ == "__main__":
    asyncio.run(main())
