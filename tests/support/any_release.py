"""For job modules and apps that run under release 0.2.0 as well as this code (upgrade,
rollback and mixed-version tests): the public face of whichever release runs them, and a record
of each run that a test compares with the ledger."""

from __future__ import annotations

import importlib
import json
import os
from datetime import UTC, datetime
from typing import Any

import redis

try:  # 0.2.0's public face, when this runs from that release's tree (tests/support/releases.py)
    public: Any = importlib.import_module("services.core")
except ImportError:
    public = importlib.import_module("tickonce")


def record_run(list_key: str) -> None:
    """Append the current run (job, fire time in ms, runner, epoch, release) to ``list_key``."""
    run = public.current_run()
    at = run.scheduled_at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    record = {
        "job": run.job_id,
        "at": int(at.total_seconds() * 1000),
        "runner": run.runner,
        "epoch": run.epoch,
        "release": public.__name__,
    }
    with redis.Redis.from_url(os.environ["REDIS_URL"]) as client:
        client.rpush(list_key, json.dumps(record))
