"""The drop-in AsyncIOScheduler's calls on stored jobs, against a real Redis: they go through
the cluster's leader (here this process's own contender) and return the job as it is then;
errors are APScheduler's (JobLookupError) or say what is wrong."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from apscheduler.jobstores.base import JobLookupError

from tests.support.dropin_jobs import report
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer
from tickonce import AsyncIOScheduler, ScheduledJob
from tickonce._config.settings import Settings
from tickonce._jobs.registry import registry
from tickonce._storage.keys import Keys

JOB = "report-acme"


@pytest.fixture
def scheduler(
    redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> Iterator[AsyncIOScheduler]:
    scheduler = AsyncIOScheduler(timezone="UTC", settings=make_settings(redis_server))
    yield scheduler
    if scheduler.running:
        scheduler.shutdown()
    if registry.get(JOB) is not None:
        registry.remove(JOB)


def stored(scheduler: AsyncIOScheduler) -> ScheduledJob | None:
    job = scheduler.get_job(JOB)
    return job if job is not None and not job.pending else None


def test_changes_go_through_the_leader_and_return_the_job_as_it_is(
    scheduler: AsyncIOScheduler, client: redis.Redis
) -> None:
    handle = scheduler.add_job(report, "interval", args=["acme"], hours=1, id=JOB)
    assert handle.pending
    scheduler.start()
    job = wait_until(lambda: stored(scheduler), 20, "the job stored by the leader")
    assert job is not None
    assert (job.trigger, dict(job.kwargs)) == ("interval[1:00:00]", {"customer": "acme"})
    assert job.next_run_time is not None
    # (with every job this test process defines: the drop-in shares the process's registry)
    assert JOB in {j.id for j in scheduler.get_jobs()}

    assert scheduler.pause_job(JOB).next_run_time is None
    resumed = scheduler.resume_job(JOB)
    assert resumed is not None and resumed.next_run_time is not None
    moved = scheduler.reschedule_job(JOB, trigger="interval", minutes=5)
    assert moved.trigger == "interval[0:05:00]"
    changed = scheduler.modify_job(
        JOB, max_instances=3, coalesce=False, kwargs={"customer": "globex"}, name="Globex"
    )
    assert (changed.max_instances, changed.coalesce, changed.name) == (3, False, "Globex")
    assert dict(changed.kwargs) == {"customer": "globex"}
    assert changed.pause().next_run_time is None, "the job's own methods work too"

    async def from_an_endpoint() -> Any:  # as a FastAPI handler would call it, on its loop
        return scheduler.resume_job(JOB)

    assert asyncio.run(from_an_endpoint()).next_run_time is not None

    with pytest.raises(JobLookupError):
        scheduler.pause_job("no-such-job")
    with pytest.raises(ValueError, match="an interval must be longer than zero"):
        scheduler.reschedule_job(JOB, trigger="interval", seconds=0)
    with pytest.raises(ValueError, match="kwargs do not fit"):
        scheduler.modify_job(JOB, kwargs={"colour": "red"})

    scheduler.remove_job(JOB)
    assert registry.get(JOB) is None, "this process no longer defines it"
    wait_until(lambda: scheduler.get_job(JOB) is None, 30, "the leader removing the job")


def test_a_sigterm_to_the_server_hands_the_lease_over_before_shutdown_is_called(
    scheduler: AsyncIOScheduler, client: redis.Redis, prefix: str
) -> None:
    """Started from a server's lifespan (in its main thread, where the server's own SIGTERM
    handler is set), the drop-in hears the signal: it hands its lease over at once, and the
    server's handler still runs (the server goes on to drain its requests, then ends the
    lifespan, which calls shutdown)."""
    heard: list[int] = []

    def server(signum: int, frame: object) -> None:
        heard.append(signum)

    before = signal.signal(signal.SIGTERM, server)
    try:
        scheduler.start()
        wait_until(lambda: client.get(Keys(prefix).lease), 20, "this process leading")
        os.kill(os.getpid(), signal.SIGTERM)
        assert heard == [signal.SIGTERM], "the server's own handler runs"
        wait_until(lambda: not client.get(Keys(prefix).lease), 10, "the lease handed over")
        assert scheduler.running, "shutdown is still the lifespan's to call"
        scheduler.shutdown()
        assert signal.getsignal(signal.SIGTERM) is server, "the server's handler is back"
    finally:
        signal.signal(signal.SIGTERM, before)
