"""How a deployment's data in Redis is laid out: the shard count it is split into, and the
format version of what is stored. The first process that contends records both; every other
checks them. A process configured for another shard count would look for its jobs, leases and
claims under other keys, and could fire a job its shard's leader fires too; one that finds data
in a format it does not know would misread it."""

from __future__ import annotations

import redis.asyncio as aioredis

from tickonce._exceptions import ConfigError
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

# The format version of what this code keeps in Redis. Data written before 0.3.0 records none
# and is format 1. Any change to stored data bumps it and comes with an upgrade -> rollback ->
# upgrade test on real processes (tests/integration/test_storage_upgrade.py).
STORAGE_FORMAT = 1


async def check_layout(client: aioredis.Redis, keys: Keys) -> None:
    """Record ``keys.shards`` and ``STORAGE_FORMAT`` where none is recorded yet.

    :raises ConfigError: another shard count, or a format this code does not read, is recorded.
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.layout, keys.shards, nx=True)
        pipe.get(keys.layout)
        pipe.set(keys.storage_format, STORAGE_FORMAT, nx=True)
        pipe.get(keys.storage_format)
        _, shards, _, storage_format = await pipe.execute()
    problem = _problem(keys, shards, storage_format)
    if problem:
        raise ConfigError(problem)


async def layout_problem(client: aioredis.Redis, keys: Keys) -> str:
    """What stops this code from using the deployment's data (one line), empty if nothing does
    or nothing is recorded yet. Reads only."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(keys.layout)
        pipe.get(keys.storage_format)
        shards, storage_format = await pipe.execute()
    return _problem(keys, shards, storage_format)


def _problem(keys: Keys, shards: bytes | str | None, storage_format: bytes | str | None) -> str:
    if shards is not None and int(text(shards)) != keys.shards:
        return (
            f"invalid setting SCHEDULER_SHARDS={keys.shards}: this deployment's data in Redis "
            f"(key {keys.layout!r}) is laid out for {text(shards)} shard(s). Set "
            f"SCHEDULER_SHARDS={text(shards)} on every service; changing the shard count of a "
            "deployment is not supported"
        )
    if storage_format is not None and text(storage_format) != str(STORAGE_FORMAT):
        return (
            f"this deployment's data in Redis (key {keys.storage_format!r}) is in storage "
            f"format {text(storage_format)}, which this version of tickonce does not read (it "
            f"reads format {STORAGE_FORMAT}): run the version that wrote it, or a newer one"
        )
    return ""
