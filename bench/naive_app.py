"""The popular recipe tickonce replaces: an AsyncIOScheduler started in FastAPI's lifespan.

Under ``gunicorn -w N`` every worker runs its own scheduler, so every job runs N times per
scheduled time. Each run increments ``NAIVE_COUNTER_KEY`` in Redis so a benchmark can count.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from fastapi import FastAPI

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
COUNTER = os.environ.get("NAIVE_COUNTER_KEY", "naive:runs")


async def job() -> None:
    async with aioredis.Redis.from_url(REDIS_URL) as client:
        await client.incr(COUNTER)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    scheduler = AsyncIOScheduler()
    scheduler.add_job(job, "interval", seconds=1)
    scheduler.start()
    yield
    scheduler.shutdown()


app = FastAPI(lifespan=lifespan)
