"""The classic recipe: an AsyncIOScheduler started in FastAPI's lifespan, with one import
changed. Under `gunicorn -w 4 -k uvicorn_worker.UvicornWorker main:app`, on as many servers as
share REDIS_URL, `tick` runs once per second in all, never more than two at a time."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI

from tickonce import AsyncIOScheduler  # was: from apscheduler.schedulers.asyncio import ...

scheduler = AsyncIOScheduler()


async def tick() -> None:
    print(f"tick {datetime.now().isoformat()}")
    await asyncio.sleep(3)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    scheduler.add_job(tick, "interval", seconds=1, max_instances=2)
    scheduler.start()
    yield
    scheduler.shutdown()


app = FastAPI(lifespan=lifespan)
