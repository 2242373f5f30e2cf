"""Jobs that release 0.2.0 (``services.core``) and this code (``tickonce``) both load, the same
definitions in each: the storage upgrade and rollback test runs them under both. Every run
appends its job, fire time and runner to a list of its own (``runs_key``)."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from typing import Any

import redis

try:  # 0.2.0's public face, when this runs from that release's tree
    public: Any = importlib.import_module("services.core")
except ImportError:
    public = importlib.import_module("tickonce")

Body = Callable[[], None]
job: Callable[..., Callable[[Body], Body]] = public.job

EVERY_SECOND = "every-second"
ONCE = "once"
# The one-off job's fire time, the same in every process of a test.
ONCE_AT = os.environ.get("UPGRADE_ONCE_AT", "2000-01-01T00:00:00+00:00")


def runs_key(prefix: str) -> str:
    return f"{prefix}upgrade-test:runs"


def _record() -> None:
    run = public.current_run()
    record = {"job": run.job_id, "at": run.scheduled_at.isoformat(), "runner": run.runner}
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        client.rpush(runs_key(os.environ["KEY_PREFIX"]), json.dumps(record))


@job("interval", seconds=1, id=EVERY_SECOND)
def every_second() -> None:
    _record()


@job("date", run_date=ONCE_AT, id=ONCE)
def once() -> None:
    _record()
