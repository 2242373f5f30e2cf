"""Live contenders (leader and standbys), kept by heartbeats in Redis server time."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import redis
import redis.asyncio as aioredis

from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

# As a member reports itself: "retiring" is a standby stopping (its entry says so in a field
# of its own, which versions that do not know it ignore).
Role = Literal["leader", "standby", "retiring"]
StoredRole = Literal["leader", "standby"]

# Heartbeat and forget the silent, in one step and in Redis's clock (no host clock skew); the
# member's published job definitions live as long as its heartbeat.
# KEYS: members, info, the member's jobs. ARGV: member id, info JSON, window ms.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[3], 2 * tonumber(ARGV[3]))
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return now
"""


# The members as of Redis's clock, in one step (one slot: a script, not a transaction, which
# a Redis Cluster client cannot send with TIME in it). KEYS: members, info.
_READ = """
local t = redis.call('TIME')
local seen = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
return {t[1], t[2], seen, redis.call('HGETALL', KEYS[2])}
"""


@dataclass(frozen=True)
class Member:
    runner_id: str
    role: Role  # leader of at least one shard, standby, or retiring: stopping, taking no lease
    mode: str
    epoch: int | None  # of shard 0, while it leads it (the only shard, by default)
    last_seen_ms_ago: int
    shards: dict[int, int] = field(default_factory=dict)  # led shard -> its epoch


class Membership:
    """This contender's entry in the member list."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, runner_id: str, mode: str, window_ms: int
    ) -> None:
        self._client = client
        self._keys = keys
        self.runner_id = runner_id
        self._mode = mode
        self._window_ms = window_ms
        self._beat = client.register_script(_HEARTBEAT)

    async def beat(
        self, role: StoredRole, led: Mapping[int, int | None], *, retiring: bool = False
    ) -> None:
        """:param led: the shards this member leads, each with its epoch.
        :param retiring: this process is stopping and takes no lease (see Contender.retire).
        """
        shards = {str(shard): epoch for shard, epoch in led.items() if epoch is not None}
        entry = {"role": role, "mode": self._mode, "epoch": led.get(0), "shards": shards}
        info = json.dumps({**entry, "retiring": True} if retiring else entry)
        await self._beat(
            keys=[
                self._keys.members,
                self._keys.member_info,
                self._keys.member_jobs(self.runner_id),
            ],
            args=[self.runner_id, info, self._window_ms],
        )

    async def publish_jobs(self, definitions: Mapping[str, str]) -> None:
        """Say which jobs this member's code defines (job id -> definition fingerprint)."""
        key = self._keys.member_jobs(self.runner_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if definitions:
                pipe.hset(key, mapping=dict(definitions))  # type: ignore[arg-type]
                pipe.pexpire(key, 2 * self._window_ms)
            await pipe.execute()

    async def leave(self) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.members, self.runner_id)
            pipe.hdel(self._keys.member_info, self.runner_id)
            pipe.delete(self._keys.member_jobs(self.runner_id))
            await pipe.execute()


async def live_members(client: aioredis.Redis, keys: Keys, window_ms: int) -> list[Member]:
    """Contenders heard from within the window (client with ``decode_responses=True``)."""
    read = client.register_script(_READ)
    seconds, micros, flat_seen, flat_infos = await read(keys=[keys.members, keys.member_info])
    seen = zip(flat_seen[::2], flat_seen[1::2], strict=True)
    infos = dict(zip(flat_infos[::2], flat_infos[1::2], strict=True))
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    members = []
    for runner_id, last_seen in seen:
        age = now_ms - int(last_seen)
        if age > window_ms or runner_id not in infos:
            continue
        info = json.loads(infos[runner_id])
        led = {int(shard): int(epoch) for shard, epoch in info.get("shards", {}).items()}
        role: Role = info["role"]
        if role == "standby" and info.get("retiring"):
            role = "retiring"
        members.append(Member(runner_id, role, info["mode"], info.get("epoch"), age, led))
    return sorted(members, key=lambda member: (member.role != "leader", member.runner_id))


def definitions_elsewhere(
    client: redis.Redis, keys: Keys, window_ms: int, me: str, job_ids: list[str]
) -> dict[str, set[str]]:
    """For each of ``job_ids``, the definition fingerprints of it in the code of the other
    live members (sync client): empty when no other live member defines it."""
    found: dict[str, set[str]] = {job_id: set() for job_id in job_ids}
    if not job_ids:
        return found
    seconds, micros = client.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    live = client.zrangebyscore(keys.members, now_ms - window_ms, "+inf")
    others = [text(member) for member in live if text(member) != me]  # type: ignore[arg-type]
    pipe = client.pipeline(transaction=False)
    for member in others:
        pipe.hmget(keys.member_jobs(member), job_ids)
    for fingerprints in pipe.execute():
        for job_id, fingerprint in zip(job_ids, fingerprints, strict=True):
            if fingerprint is not None:
                found[job_id].add(text(fingerprint))
    return found
