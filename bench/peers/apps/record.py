"""What every peer's job body does: record its own start, with the scheduled time the system's
own API gives, and which instance ran it (PEERS_REDIS, PEERS_KEY, PEERS_INSTANCE)."""

from __future__ import annotations

import json
import os
import time

import redis


def record(job: str, scheduled: float, started: float | None = None, by: str = "") -> None:
    """``scheduled`` and ``started`` (now, unless given) are Unix timestamps (seconds); ``by``
    is the instance that fired it (this one, unless the system says another)."""
    entry = {
        "job": job,
        "scheduled": scheduled,
        "started": time.time() if started is None else started,
        "by": by or os.environ.get("PEERS_INSTANCE", ""),
    }
    client = _client()
    client.rpush(os.environ["PEERS_KEY"], json.dumps(entry))


_CLIENT: list[redis.Redis] = []


def _client() -> redis.Redis:
    if not _CLIENT:
        _CLIENT.append(redis.Redis.from_url(os.environ["PEERS_REDIS"]))
    return _CLIENT[0]


def job_ids() -> list[str]:
    """PEERS_JOBS jobs, each every ``interval()`` seconds."""
    return [f"peer-{n:03d}" for n in range(int(os.environ.get("PEERS_JOBS", "1")))]


def interval() -> int:
    """PEERS_INTERVAL: every job's interval, whole seconds dividing a minute, so that where a
    system takes cron fields every job is due on the same whole seconds."""
    seconds = int(os.environ.get("PEERS_INTERVAL", "1"))
    if seconds < 1 or 60 % seconds:
        raise ValueError(f"PEERS_INTERVAL={seconds}: give whole seconds that divide 60")
    return seconds
