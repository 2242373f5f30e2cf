"""Jobs that release 0.2.0 (``services.core``) and this code (``tickonce``) both define the same
way, for tests that run both versions AT ONCE (a rolling deploy). Every run appends its job,
fire time (ms), runner and epoch to a list of its own (``writes_key``)."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

try:  # 0.2.0's public face, when this runs from that release's tree
    public: Any = importlib.import_module("services.core")
except ImportError:
    public = importlib.import_module("tickonce")

Body = Callable[[], None]
job: Callable[..., Callable[[Body], Body]] = public.job

ALL = "break-all"  # every fire time runs, even after a failover (catch_up=all)
COALESCE = "break-coalesce"  # APScheduler's defaults: coalesce, grace 1 s


def writes_key(prefix: str) -> str:
    return f"{prefix}break-test:writes"


def _record() -> None:
    run = public.current_run()
    at = run.scheduled_at.astimezone(UTC)
    record = {
        "job": run.job_id,
        "at": int((at - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1000),
        "runner": run.runner,
        "epoch": run.epoch,
    }
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        client.rpush(writes_key(os.environ["KEY_PREFIX"]), json.dumps(record))


@job("interval", seconds=1, id=ALL, catch_up="all", misfire_grace_time=60)
def every_second_all() -> None:
    _record()


@job("interval", seconds=1, id=COALESCE)
def every_second_coalesce() -> None:
    _record()


# The same two in the other shard of a two-shard deployment (shard_of(id, 2) == 1).
ALL_B = "break-all-b"
COALESCE_B = "break-coalesce-b"


@job("interval", seconds=1, id=ALL_B, catch_up="all", misfire_grace_time=60)
def every_second_all_b() -> None:
    _record()


@job("interval", seconds=1, id=COALESCE_B)
def every_second_coalesce_b() -> None:
    _record()


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
    _record()
    time.sleep(SLOW_SECONDS)
    run = public.current_run()
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        end = {"at": run.scheduled_at.isoformat(), "start": started, "end": time.time()}
        client.rpush(ends_key(os.environ["KEY_PREFIX"]), json.dumps(end))
