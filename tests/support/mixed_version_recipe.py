"""The drop-in recipe as both 0.2.0 (``from services.core import AsyncIOScheduler``) and this
code (``from tickonce import AsyncIOScheduler``) run it: the same module, served by gunicorn
from either version's tree. ``beat`` runs every fire time (catch-up on) and writes its own
record; ``sleeper`` is added paused. Routes pause and read jobs through the drop-in."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tests.support.any_release import public, record_run

scheduler = public.AsyncIOScheduler(timezone="UTC")

BEAT = f"{__name__}.beat"
SLEEPER = f"{__name__}.sleeper"


def writes_key(prefix: str) -> str:
    return f"{prefix}break-recipe:writes"


def beat() -> None:
    record_run(writes_key(os.environ.get("KEY_PREFIX", "tickonce:")))


def sleeper() -> None:
    beat()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    scheduler.add_job(beat, "interval", seconds=1, coalesce=False, misfire_grace_time=60)
    scheduler.add_job(sleeper, "interval", seconds=1)
    scheduler.start()
    yield
    scheduler.shutdown()


app = FastAPI(lifespan=lifespan)


@app.post("/pause/{job_id}")
def pause(job_id: str) -> dict[str, Any]:
    job = scheduler.pause_job(job_id)
    return {"id": job.id, "paused": job.next_run_time is None}


@app.get("/job/{job_id}")
def get(job_id: str) -> dict[str, Any]:
    job = scheduler.get_job(job_id)
    return {
        "id": job_id,
        "found": job is not None,
        "paused": job is not None and job.next_run_time is None,
    }
