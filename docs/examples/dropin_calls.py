"""The drop-in beyond the recipe: explicit ids, a decorator, job defaults, and a change to a
stored job from a route. Serve it as the recipe: ``gunicorn -k uvicorn_worker.UvicornWorker``."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException

from tickonce import AsyncIOScheduler, JobLookupError, LeaderUnavailable

scheduler = AsyncIOScheduler(timezone="Europe/Berlin", job_defaults={"misfire_grace_time": 30})


@scheduler.scheduled_job("cron", hour=3, id="nightly-cleanup")
def nightly_cleanup() -> None:
    print("cleaning up")


async def send_digest(channel: str) -> None:
    print(f"digest to {channel}")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Every worker makes the same calls: each defines the job, the leader fires it.
    scheduler.add_job(send_digest, "interval", minutes=10, id="digest", kwargs={"channel": "ops"})
    scheduler.start()
    yield
    scheduler.shutdown()


app = FastAPI(lifespan=lifespan)


@app.post("/digest/pause")
def pause_digest() -> dict[str, str]:
    """A sync route runs in a thread pool: the call waits there for the leader to apply it."""
    try:
        job = scheduler.pause_job("digest")
    except JobLookupError:
        raise HTTPException(404, "no job 'digest'") from None
    except LeaderUnavailable as exc:  # no leader applied it within COMMAND_TIMEOUT_SECONDS
        raise HTTPException(503, str(exc)) from None
    return {"id": job.id, "paused": str(job.next_run_time is None)}
