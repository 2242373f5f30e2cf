"""What tickonce needs of Redis, checked when a contender starts.

- **No eviction of keys without an expiry.** The fencing epoch, the decided marks, the job
  store and the claims never expire; a Redis that may evict any key when it is full
  (``maxmemory`` set with an ``allkeys-*`` policy) can evict an epoch, which breaks fencing, or
  a decided mark, which lets a fire time run again: refused. ``volatile-*`` policies evict only
  keys with an expiry (a deleted job's ledger, command outcomes, run-now claims, heartbeats),
  which costs history, not the guarantee: a warning.
- **Persistence.** A Redis that keeps nothing on disk loses every job, epoch and decided mark
  when it restarts: a warning (tests and throwaway setups run so on purpose).
- A managed Redis may refuse ``CONFIG``: then nothing can be checked, and a line says so.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tickonce._exceptions import ConfigError

logger = logging.getLogger("tickonce.redis")


async def check_redis(client: aioredis.Redis) -> None:
    """Check the Redis ``client`` reaches (each node of a cluster).

    :raises ConfigError: Redis may evict keys tickonce cannot lose.
    """
    try:
        found: dict[Any, Any] = await client.config_get("*")
    except ResponseError as exc:
        logger.warning(
            "could not check Redis's eviction policy and persistence (CONFIG GET refused: %s): "
            "make sure it never evicts keys without an expiry (maxmemory-policy noeviction or "
            "volatile-*) and keeps its data on disk",
            exc,
        )
        return
    # A cluster client answers per node ({node: {name: value}}); a plain client, one mapping.
    nodes = found.values() if found and isinstance(next(iter(found.values())), dict) else [found]
    for config in nodes:
        _check(config)


def _check(config: dict[Any, Any]) -> None:
    policy = str(config.get("maxmemory-policy", "noeviction"))
    limit = int(config.get("maxmemory", 0) or 0)
    if limit and policy.startswith("allkeys-"):
        raise ConfigError(
            f"Redis may evict any key when full (maxmemory {limit}, maxmemory-policy {policy}): "
            "an evicted fencing epoch or decided mark would let a fire time run twice. Set "
            "maxmemory-policy noeviction (or unset maxmemory)"
        )
    if limit and policy != "noeviction":
        logger.warning(
            "Redis evicts keys with an expiry when full (maxmemory %d, maxmemory-policy %s): "
            "deleted jobs' ledgers, command outcomes and run-now claims may go early; "
            "noeviction keeps them",
            limit,
            policy,
        )
    if str(config.get("appendonly", "no")) != "yes" and not str(config.get("save", "")).strip():
        logger.warning(
            "Redis keeps nothing on disk (appendonly no, no save points): a Redis restart "
            "loses every job, fencing epoch and decided mark. Use appendonly yes in production"
        )
