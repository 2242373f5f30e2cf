"""Benchmark jobs: BENCH_JOBS no-op jobs every BENCH_INTERVAL seconds (default 1), all due at
the same instant (the worst case for lateness) or, with BENCH_SPREAD=1, spread evenly over the
interval (a sustained rate); and a counter job for comparing duplicate runs with the naive
recipe."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from tickonce._config.settings import get_settings
from tickonce._jobs.registry import job
from tickonce._storage.keys import Keys

BENCH_JOBS = int(os.environ.get("BENCH_JOBS", "0"))
BENCH_INTERVAL = float(os.environ.get("BENCH_INTERVAL", "1"))
BENCH_SPREAD = os.environ.get("BENCH_SPREAD", "") == "1"


async def _noop() -> None: ...


# One start for all (a whole second): every fire time of every job is the same instant.
# (Without it each job would start when it was added, spread over the time that takes.)
_START = datetime(2026, 1, 1, tzinfo=UTC)


def bench_id(n: int) -> str:
    return f"bench-{n:06d}"


for _n in range(BENCH_JOBS):
    _offset = timedelta(seconds=BENCH_INTERVAL * _n / BENCH_JOBS) if BENCH_SPREAD else timedelta()
    job("interval", seconds=BENCH_INTERVAL, start_date=_START + _offset, id=bench_id(_n))(_noop)


# The task of the jobs bench/scale.py stores (registered, never fired itself).
job("interval", hours=24, id="bench-noop", start_paused=True)(_noop)

# A 1-s job in each shard (of 1 or 2; checked where used): each shard's scheduler wakes every
# second and finds the jobs bench/scale.py writes straight to its store (the API's changes
# wake it themselves).
WAKERS = [f"bench-wake-{n}" for n in range(4)]
for _job_id in WAKERS:
    job("interval", seconds=1, id=_job_id)(_noop)


def counter_key() -> str:
    return Keys(get_settings().key_prefix).example("bench-count")


@job("interval", seconds=1, id="bench-count")
async def count() -> None:
    """Counts its runs, like the naive recipe's job does."""
    async with aioredis.Redis.from_url(get_settings().redis_url) as client:
        await client.incr(counter_key())
