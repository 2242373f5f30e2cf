"""Jobs that release 0.2.0 (``services.core``) and this code (``tickonce``) both define the same
way, for tests that run both versions AT ONCE (a rolling deploy). Every run appends its job,
fire time (ms), runner and epoch to a list of its own (``writes_key``)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import redis

from tests.support.any_release import public, record_run

Body = Callable[[], None]
job: Callable[..., Callable[[Body], Body]] = public.job

ALL = "break-all"  # every fire time runs, even after a failover (catch_up=all)
COALESCE = "break-coalesce"  # APScheduler's defaults: coalesce, grace 1 s


def writes_key(prefix: str) -> str:
    return f"{prefix}break-test:writes"


@job("interval", seconds=1, id=ALL, catch_up="all", misfire_grace_time=60)
def every_second_all() -> None:
    record_run(writes_key(os.environ["KEY_PREFIX"]))


@job("interval", seconds=1, id=COALESCE)
def every_second_coalesce() -> None:
    record_run(writes_key(os.environ["KEY_PREFIX"]))


# The same two in the other shard of a two-shard deployment (shard_of(id, 2) == 1).
ALL_B = "break-all-b"
COALESCE_B = "break-coalesce-b"


@job("interval", seconds=1, id=ALL_B, catch_up="all", misfire_grace_time=60)
def every_second_all_b() -> None:
    record_run(writes_key(os.environ["KEY_PREFIX"]))


@job("interval", seconds=1, id=COALESCE_B)
def every_second_coalesce_b() -> None:
    record_run(writes_key(os.environ["KEY_PREFIX"]))


# A body longer than the interval, one at a time across the cluster: SIGKILL leaves its claim
# to be closed by the next leader (of either version), SIGTERM lets it run on beside him.
SLOW = "break-slow"
SLOW_SECONDS = 2.5


def ends_key(prefix: str) -> str:
    return f"{prefix}break-test:ends"


@job("interval", seconds=1, id=SLOW, max_instances=1, catch_up="all", misfire_grace_time=60)
def slow() -> None:
    import time

    started = time.time()
    record_run(writes_key(os.environ["KEY_PREFIX"]))
    time.sleep(SLOW_SECONDS)
    run = public.current_run()
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        end = {"at": run.scheduled_at.isoformat(), "start": started, "end": time.time()}
        client.rpush(ends_key(os.environ["KEY_PREFIX"]), json.dumps(end))
