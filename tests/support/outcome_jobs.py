"""Job bodies that succeed, raise, overlap, block, hang (sync and async) or are killed, each
recording what it did in Redis lists of its own (``examples:outcomes:<job>:<event>``), from
inside its worker process."""

from __future__ import annotations

import asyncio
import json
import os
import time

import redis

from tickonce._config.settings import get_settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import current_run
from tickonce._storage.keys import Keys

_clients: dict[str, redis.Redis] = {}


def events_key(prefix: str, job_id: str, event: str) -> str:
    return Keys(prefix).example(f"outcomes:{job_id}:{event}")


def _client() -> redis.Redis:
    url = get_settings().redis_url
    if url not in _clients:  # one client per worker process, not one per run
        _clients[url] = redis.Redis.from_url(url, socket_timeout=5)
    return _clients[url]


def note(event: str) -> None:
    run = current_run()
    record = {
        "job": run.job_id,
        "at": fire_ms(run.scheduled_at),
        "pid": os.getpid(),
        "wall_ms": int(time.time() * 1000),
    }
    key = events_key(get_settings().key_prefix, run.job_id, event)
    _client().rpush(key, json.dumps(record))


def noted(client: redis.Redis, prefix: str, job_id: str, event: str) -> list[dict[str, int]]:
    return [json.loads(item) for item in client.lrange(events_key(prefix, job_id, event), 0, -1)]


async def slow() -> None:
    await asyncio.sleep(2.5)


async def boom() -> None:
    raise ValueError("boom")


def sync_context() -> None:
    note("ran")


async def blocker() -> None:
    """Blocks its own event loop once, for long (a bad async body)."""
    settings = get_settings()
    if _client().set(events_key(settings.key_prefix, "blocker", "once"), 1, nx=True):
        time.sleep(2.5)  # noqa: ASYNC251 - blocks the loop on purpose
        note("blocked")


async def victim() -> None: ...


async def hang() -> None:
    note("started")
    await asyncio.sleep(60)
    note("finished")


def hang_sync() -> None:
    note("started")
    time.sleep(1.2)
    note("finished")


def crash() -> None:
    """The worker process dies under the body (a segfault, an OOM kill)."""
    os._exit(13)
