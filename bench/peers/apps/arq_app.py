"""arq: cron jobs on whole seconds, run by the worker that also schedules them. The scheduled time
is the job's score (its defer-until time, ms)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq import cron
from arq.connections import RedisSettings

from bench.peers.apps.record import interval, job_ids, record


def _body(job: str) -> Any:
    async def run(ctx: dict[str, Any]) -> None:
        record(job, ctx["score"] / 1000)

    run.__qualname__ = run.__name__ = job.replace("-", "_")
    return run


class WorkerSettings:
    redis_settings = RedisSettings.from_dsn(os.environ["PEERS_REDIS"])
    functions: ClassVar[list[Any]] = []
    cron_jobs: ClassVar[list[Any]] = [
        cron(_body(job), second=set(range(0, 60, interval())), microsecond=0) for job in job_ids()
    ]
