"""Redis clients, built one way from the settings."""

from __future__ import annotations

import os
import socket

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.core.settings import Settings

# One quick retry absorbs a pooled connection that died with a Redis restart; anything longer
# must surface as an error so callers can fence themselves or answer 503.
_RETRY_ON = (redis.ConnectionError, redis.TimeoutError)


def async_redis(
    settings: Settings, *, decode: bool = True, timeout: float | None = None
) -> aioredis.Redis:
    """An asyncio client; ``decode=False`` for binary values such as pickled jobs.

    :param timeout: socket timeout; ``REDIS_TIMEOUT_SECONDS`` by default.
    """
    timeout = timeout or settings.redis_timeout_seconds
    return aioredis.Redis.from_url(
        settings.redis_url,
        decode_responses=decode,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=AsyncRetry(NoBackoff(), 1),
        retry_on_error=list(_RETRY_ON),
    )


def sync_redis(settings: Settings, *, decode: bool = False) -> redis.Redis:
    """A blocking client, for APScheduler's job store and the claims made while it fires."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=decode,
        socket_timeout=settings.firing_redis_timeout,
        socket_connect_timeout=settings.firing_redis_timeout,
        retry=Retry(NoBackoff(), 1),
        retry_on_error=list(_RETRY_ON),
    )


def text(value: bytes | str) -> str:
    """A Redis reply as text, whichever way the client decodes."""
    return value.decode() if isinstance(value, bytes) else value


_RUNNER_IDS: dict[int, str] = {}  # runner_id()'s cache: pid -> id of this process start


def runner_id() -> str:
    """This process start as ``host:pid:nonce``: the runner named in claims, the ledger and
    /scheduler.

    ``nonce`` (8 hex digits, random once per process start) keeps a restarted container, with
    the same hostname and pid (1 in its pid namespace), from passing for its dead predecessor,
    whose claimed runs would then never be recorded as lost. A forked child gets an id of its own.
    """
    pid = os.getpid()
    if pid not in _RUNNER_IDS:
        _RUNNER_IDS.clear()
        _RUNNER_IDS[pid] = f"{socket.gethostname()}:{pid}:{os.urandom(4).hex()}"
    return _RUNNER_IDS[pid]
