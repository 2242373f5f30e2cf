"""The shard count a deployment's data is laid out for, recorded in Redis by the first process
that contends, and checked by every other: a process configured for another count would look
for its jobs, leases and claims under other keys, and could fire a job its shard's leader
fires too."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.core.connection import text
from services.core.keys import Keys
from services.core.settings import ConfigError


async def check_layout(client: aioredis.Redis, keys: Keys) -> None:
    """Record ``keys.shards`` if no count is recorded yet.

    :raises ConfigError: another count is recorded.
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.layout, keys.shards, nx=True)
        pipe.get(keys.layout)
        _, recorded = await pipe.execute()
    if recorded is not None and int(text(recorded)) != keys.shards:
        raise ConfigError(layout_mismatch(keys, int(text(recorded))))


async def recorded_shards(client: aioredis.Redis, keys: Keys) -> int | None:
    """The recorded shard count, None before any scheduler contended."""
    recorded = await client.get(keys.layout)
    return None if recorded is None else int(text(recorded))


def layout_mismatch(keys: Keys, recorded: int) -> str:
    return (
        f"invalid setting SCHEDULER_SHARDS={keys.shards}: this deployment's data in Redis "
        f"(key {keys.layout!r}) is laid out for {recorded} shard(s). Set SCHEDULER_SHARDS="
        f"{recorded} on every service; changing the shard count of a deployment is not "
        "supported"
    )
