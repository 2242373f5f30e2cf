"""What API requests share: Redis clients and readers, created in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from fastapi import Request

from services.core.connection import async_redis
from services.core.keys import Keys
from services.core.ledger import RunLedger
from services.core.settings import Settings


@dataclass
class ApiState:
    settings: Settings
    keys: Keys = field(init=False)
    redis: aioredis.Redis = field(init=False)
    redis_bytes: aioredis.Redis = field(init=False)
    ledger: RunLedger = field(init=False)

    def __post_init__(self) -> None:
        self.keys = Keys(self.settings.key_prefix)
        self.redis = async_redis(self.settings)
        self.redis_bytes = async_redis(self.settings, decode=False)
        self.ledger = RunLedger(self.redis, self.keys, self.settings.ledger_max_entries)

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis_bytes.aclose()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tickonce
    return state
