"""Live contenders (leader and standbys), kept by heartbeats in Redis server time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis

from services.core.keys import Keys

Role = Literal["leader", "standby"]

# Heartbeat and forget the silent, in one step and in Redis's clock (no host clock skew).
# KEYS: members, info. ARGV: member id, info JSON, window ms.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
return now
"""


@dataclass(frozen=True)
class Member:
    id: str
    role: Role
    mode: str
    epoch: int | None
    last_seen_ms_ago: int


class Membership:
    """This contender's entry in the member list."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, member_id: str, mode: str, window_ms: int
    ) -> None:
        self._client = client
        self._keys = keys
        self._id = member_id
        self._mode = mode
        self._window_ms = window_ms
        self._beat = client.register_script(_HEARTBEAT)

    async def beat(self, role: Role, epoch: int | None) -> None:
        info = json.dumps({"role": role, "mode": self._mode, "epoch": epoch})
        await self._beat(
            keys=[self._keys.members, self._keys.member_info],
            args=[self._id, info, self._window_ms],
        )

    async def leave(self) -> None:
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys.members, self._id)
            pipe.hdel(self._keys.member_info, self._id)
            await pipe.execute()


async def live_members(client: aioredis.Redis, keys: Keys, window_ms: int) -> list[Member]:
    """Contenders heard from within the window (client with ``decode_responses=True``)."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.time()
        pipe.zrange(keys.members, 0, -1, withscores=True)
        pipe.hgetall(keys.member_info)
        (seconds, micros), seen, infos = await pipe.execute()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    members = []
    for member_id, last_seen in seen:
        age = now_ms - int(last_seen)
        if age > window_ms or member_id not in infos:
            continue
        info = json.loads(infos[member_id])
        members.append(Member(member_id, info["role"], info["mode"], info.get("epoch"), age))
    return sorted(members, key=lambda member: (member.role != "leader", member.id))
