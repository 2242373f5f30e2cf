"""Many jobs due at the same whole second, so a Redis stall can land mid-wakeup, and one
witness among them that records each of its runs itself, independent of the ledger.
Only for JOBS_MODULES of scheduler processes: importing it registers 301 jobs."""

from __future__ import annotations

import json

import redis

from tickonce._config.settings import get_settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import current_run, job
from tickonce._storage.keys import Keys

WITNESS = "witness"
LOAD = [f"second-{n:03d}" for n in range(300)]

_clients: dict[str, redis.Redis] = {}


def witness_key(prefix: str) -> str:
    return Keys(prefix).example(WITNESS)


def _client(url: str) -> redis.Redis:
    # One client per process (redis-py's pool is thread-safe), not one per run.
    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _clients[url]


@job("cron", second="*", id=WITNESS, misfire_grace_time=30, catch_up="all")
def witness() -> None:
    run = current_run()
    settings = get_settings()
    record = {"at": fire_ms(run.scheduled_at), "runner": run.runner, "epoch": run.epoch}
    _client(settings.redis_url).rpush(witness_key(settings.key_prefix), json.dumps(record))


def _noop() -> None: ...


for _job_id in LOAD:
    job("cron", second="*", id=_job_id, misfire_grace_time=30, catch_up="all")(_noop)
