"""How a deployment's data in Redis is laid out: the shard count it is split into, and the
format version of what is stored. The first process that contends records both; every other
checks them, and so does every api replica. A process configured for another shard count
would look for its jobs, leases and claims under other keys, and could fire a job its shard's
leader fires too; one that finds data in a format it does not know would misread it."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from tickonce._exceptions import ConfigError
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

# The format version of what this code keeps in Redis. Any change to stored data bumps it and
# comes with an upgrade -> rollback -> upgrade test on real processes
# (tests/integration/test_storage_upgrade.py). Format 1: 0.2.0's data, which records no
# format. Format 2 adds the retired jobs (Keys.retired) and commands' applied marks
# (Keys.command_applied); format 1 reads as format 2 without any, so it is upgraded by
# recording 2.
STORAGE_FORMAT = 2
READABLE_FORMATS = ("1", "2")

# Record ARGV[1] unless another format than those in ARGV[2..] is recorded. KEYS: format.
_UPGRADE_FORMAT = """
local found = redis.call('GET', KEYS[1])
if found then
  local readable = false
  for i = 2, #ARGV do if found == ARGV[i] then readable = true end end
  if not readable then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


# A record as text whatever it holds, so an odd value is refused by name rather than failing
# the read: false when absent, '<a hash>' for another type, '<not text>' for bytes that are not
# printable ASCII. KEYS: the record.
_READ_RECORD = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'string' then return '<a ' .. kind .. '>' end
local value = redis.call('GET', KEYS[1])
if string.find(value, '[^%w%p ]') then return '<not text>' end
return value
"""


@dataclass(frozen=True)
class Layout:
    """What Redis records of the data's layout."""

    shards: str | None  # as recorded; None: not recorded yet
    storage_format: str | None
    untagged: str  # with no shard count recorded: an untagged key holding data, else ""

    def problem(self, keys: Keys) -> str:
        """Why ``keys`` (this process's settings) cannot use this data, in one line; empty if
        they can."""
        if self.shards is not None and not self.shards.isdigit():
            return (
                f"this deployment's data in Redis has a shard layout record (key "
                f"{keys.layout!r}) holding {self.shards!r}, not a shard count: restore it, "
                "or remove the key if this Redis holds no tickonce data"
            )
        if self.shards is not None and int(self.shards) != keys.shards:
            return (
                f"invalid setting SCHEDULER_SHARDS={keys.shards}: this deployment's data in "
                f"Redis (key {keys.layout!r}) is laid out for {self.shards} shard(s). Set "
                f"SCHEDULER_SHARDS={self.shards} on every service; changing the shard count of "
                "a deployment is not supported"
            )
        if self.shards is None and self.untagged:
            return (
                f"invalid setting SCHEDULER_SHARDS={keys.shards}"
                f"{' with REDIS_CLUSTER=true' if keys.shards == 1 else ''}: this deployment's "
                f"data in Redis (key {self.untagged!r}, no shard layout recorded) was written "
                "by a version without shards, under keys one shard without Redis Cluster "
                "reads. Set SCHEDULER_SHARDS=1 (without REDIS_CLUSTER); changing the shard "
                "count of a deployment is not supported"
            )
        found = self.storage_format
        if found is not None and found not in READABLE_FORMATS:
            shown = found if found.isdigit() else repr(found)
            return (
                f"this deployment's data in Redis (key {keys.storage_format!r}) is in storage "
                f"format {shown}, which this version of tickonce does not read "
                f"(it reads formats {', '.join(READABLE_FORMATS)}): run the version that wrote it, "
                "or a newer one"
            )
        return ""


async def read_layout(client: aioredis.Redis, keys: Keys) -> Layout:
    """The recorded layout; with none recorded and hash-tagged ``keys``, whether data sits
    under the untagged keys of a version without shards."""
    shards = await client.eval(_READ_RECORD, 1, keys.layout)
    storage_format = await client.eval(_READ_RECORD, 1, keys.storage_format)
    untagged = ""
    if shards is None and keys.tagged:
        old = Keys(keys.prefix)
        names = [old.jobs, old.decided, old.epoch]
        async with client.pipeline(transaction=False) as pipe:
            for name in names:  # one at a time: on a Redis Cluster they lie in other slots
                pipe.exists(name)
            found = await pipe.execute()
        untagged = next((name for name, n in zip(names, found, strict=True) if n), "")
    return Layout(
        None if shards is None else text(shards),
        None if storage_format is None else text(storage_format),
        untagged,
    )


async def check_layout(client: aioredis.Redis, keys: Keys) -> None:
    """Record ``keys.shards`` and ``STORAGE_FORMAT`` where none is recorded yet, unless the
    data is laid out otherwise.

    :raises ConfigError: the data is laid out for another shard count, written before shards
        with several configured, or in a format this code does not read.
    """
    problem = (await read_layout(client, keys)).problem(keys)
    if problem:
        raise ConfigError(problem)
    async with client.pipeline(transaction=False) as pipe:
        pipe.set(keys.layout, keys.shards, nx=True)
        await pipe.execute()
    # A format this code reads is upgraded in place; one it does not (recorded meanwhile by a
    # newer version) is left alone, and refused below.
    await client.eval(_UPGRADE_FORMAT, 1, keys.storage_format, STORAGE_FORMAT, *READABLE_FORMATS)
    problem = (await read_layout(client, keys)).problem(keys)  # another process's record
    if problem:
        raise ConfigError(problem)
