"""A job body that records each of its runs itself (a Redis list per job), independent of the
ledger: for one-off (date) jobs whose second run would be the failure."""

from __future__ import annotations

import json

import redis

from tickonce._config.settings import get_settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import current_run
from tickonce._storage.keys import Keys


def runs_key(prefix: str, job_id: str) -> str:
    return Keys(prefix).example(f"once:{job_id}")


def send_invoice() -> None:
    run = current_run()
    settings = get_settings()
    with redis.Redis.from_url(settings.redis_url) as client:
        client.rpush(
            runs_key(settings.key_prefix, run.job_id),
            json.dumps({"at": fire_ms(run.scheduled_at), "runner": run.runner}),
        )
