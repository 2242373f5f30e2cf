"""Redis clients, built one way from the settings: from ``REDIS_URL``, through Sentinels
(``REDIS_SENTINELS``), which name the master and follow it through failovers, or of a Redis
Cluster (``REDIS_CLUSTER``) that ``REDIS_URL`` names one node of."""

from __future__ import annotations

import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.commands.core import AsyncScript, Script
from redis.connection import parse_url
from redis.exceptions import DataError, NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry
from redis.sentinel import Sentinel

from tickonce._config.settings import Settings

# Redis trouble: what a call to Redis raises when Redis cannot serve it, whichever the client
# (plain, Sentinel or Cluster; tests/integration/test_redis_trouble.py). Everything that rides
# out Redis being away catches this, and the API answers it with 503. A Sentinel client raises
# MasterNotFoundError (a ConnectionError) when no Sentinel names a master; a Cluster client
# raises RedisClusterException, which is not a RedisError, once no node can be reached.
REDIS_TROUBLE: tuple[type[Exception], ...] = (RedisError, RedisClusterException)

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
    options = _client_options(decode, timeout, AsyncRetry(NoBackoff(), 1))
    client: aioredis.Redis
    if settings.redis_sentinels:
        sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
            settings.redis_sentinels,
            sentinel_kwargs=_sentinel_options(settings, timeout),
            **_url_options(settings),
            **options,
        )
        client = sentinel.master_for(settings.redis_sentinel_master)
    elif settings.redis_cluster:
        cluster = AsyncRedisCluster.from_url(settings.redis_url, **options)
        # The same commands as a client of one server, each sent to its key's node; a Lua
        # script or transaction must keep its keys in one slot (keys.py's hash tags).
        return cast(aioredis.Redis, cluster)
    else:
        client = aioredis.Redis.from_url(settings.redis_url, **options)
    pool = client.connection_pool
    pool.connection_class = _hiredis_packing(pool.connection_class)
    return client


class _HiredisPacking:
    """Packs commands with hiredis, in C, as redis-py's blocking client already does; its
    asyncio client packs them in Python, one argument at a time, which was a tenth of a busy
    scheduler's CPU (recording 2,000 runs a second, each some 40 arguments)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:  # as redis-py's encoder says it
            raise DataError(str(exc)) from exc


def _hiredis_packing(
    connection_class: type[aioredis.connection.AbstractConnection],
) -> type[aioredis.connection.AbstractConnection]:
    """The pool's connection class (TCP, TLS or Unix socket, as the URL chose) packing with
    hiredis."""
    if issubclass(connection_class, _HiredisPacking):
        return connection_class
    name = f"HiredisPacking{connection_class.__name__}"
    return type(name, (_HiredisPacking, connection_class), {})


def sync_redis(settings: Settings, *, decode: bool = False) -> redis.Redis:
    """A blocking client, for APScheduler's job store and the claims made while it fires."""
    timeout = settings.firing_redis_timeout
    options = _client_options(decode, timeout, Retry(NoBackoff(), 1))
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            settings.redis_sentinels,
            sentinel_kwargs=_sentinel_options(settings, timeout),
            **_url_options(settings),
            **options,
        )
        client: redis.Redis = sentinel.master_for(settings.redis_sentinel_master)  # type: ignore[no-untyped-call]
        return client
    if settings.redis_cluster:
        return cast(redis.Redis, RedisCluster.from_url(settings.redis_url, **options))
    return redis.Redis.from_url(settings.redis_url, **options)


def _client_options(decode: bool, timeout: float, retry: Retry | AsyncRetry) -> dict[str, Any]:
    """Both clients' options: one quick retry of a dropped connection, short timeouts."""
    return {
        "decode_responses": decode,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": retry,
        "retry_on_error": list(_RETRY_ON),
    }


# What REDIS_URL gives a client besides the address: with Sentinels the address is theirs to
# say (and changes with every failover), the rest (credentials, database, TLS) is the URL's.
_ADDRESS = frozenset({"host", "port", "path", "connection_class"})


def _url_options(settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = dict(parse_url(settings.redis_url))  # type: ignore[no-untyped-call]
    tls = options.get("connection_class") is not None and issubclass(
        options["connection_class"], redis.SSLConnection
    )
    options = {key: value for key, value in options.items() if key not in _ADDRESS}
    if tls:
        options["ssl"] = True
    return options


def _sentinel_options(settings: Settings, timeout: float) -> dict[str, Any]:
    """How to talk to the Sentinels themselves: their own password, short timeouts (a
    Sentinel that does not answer is skipped for the next)."""
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    if settings.redis_sentinel_password is not None:
        options["password"] = settings.redis_sentinel_password.get_secret_value()
    return options


def pipelined_scripts(
    client: redis.Redis, queue: Callable[[Pipeline], None], scripts: Sequence[Script]
) -> list[Any]:
    """Run a pipeline whose Lua calls ``queue`` adds as ``EVALSHA`` (see ``evalsha``), without
    the ``SCRIPT EXISTS`` round trip redis-py sends before every pipeline of scripts. If the
    server lacks them (a restarted Redis), they are loaded and the pipeline is run again: the
    callers' scripts are idempotent (a plan by its id, a record by its claim)."""
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        queue(pipe)
        try:
            return pipe.execute()
        except NoScriptError:
            if attempt:
                raise
            for script in scripts:
                client.script_load(script.script)
    raise AssertionError("unreachable")


async def pipelined_scripts_async(
    client: aioredis.Redis,
    queue: Callable[[AsyncPipeline], Awaitable[None]],
    scripts: Sequence[AsyncScript],
) -> list[Any]:
    """``pipelined_scripts`` for an asyncio client; errors come back in the list, one per
    call, as ``execute(raise_on_error=False)`` gives them."""
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            await queue(pipe)
            results = await pipe.execute(raise_on_error=False)
        if attempt or not any(isinstance(result, NoScriptError) for result in results):
            return results
        for script in scripts:
            await client.script_load(script.script)
    raise AssertionError("unreachable")


def evalsha(
    pipe: Pipeline | AsyncPipeline, script: Script | AsyncScript, keys: list[Any], args: list[Any]
) -> Any:
    """Queue ``script`` on ``pipe`` by its digest (for ``pipelined_scripts``).

    Sent as a raw command: redis-py's cluster pipeline refuses its ``evalsha`` method, though
    it routes the command itself by its first key like any other (each script's keys share
    one slot, see keys.py)."""
    return pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


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
