"""Tasks for control-plane tests: each run appends what it was asked to do to a Redis list."""

from __future__ import annotations

import json

import redis

from tickonce._config.settings import get_settings
from tickonce._jobs.registry import current_run, job
from tickonce._storage.keys import Keys


def greetings_key(prefix: str) -> str:
    return Keys(prefix).example("greetings")


@job("interval", minutes=10, id="greet")
def greet(name: str = "world", times: int = 1) -> None:
    """Rarely scheduled: tests run it on demand or schedule it anew with kwargs."""
    run = current_run()
    settings = get_settings()
    record = {"job": run.job_id, "name": name, "times": times}
    with redis.Redis.from_url(settings.redis_url) as client:
        client.rpush(greetings_key(settings.key_prefix), json.dumps(record))
