"""What API requests share: Redis clients and readers, created in the lifespan."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from fastapi import HTTPException, Request

from tickonce._config.settings import Settings
from tickonce._control.channel import CommandSender, Op, Outcome
from tickonce._exceptions import LeaderUnavailable
from tickonce._storage.clients import async_redis
from tickonce._storage.keys import Keys
from tickonce._storage.layout import read_layout

LAYOUT_REREAD_SECONDS = 1.0


@dataclass
class ApiState:
    settings: Settings
    keys: Keys = field(init=False)
    redis: aioredis.Redis = field(init=False)
    redis_bytes: aioredis.Redis = field(init=False)
    commands: CommandSender = field(init=False)
    # The data's layout problem for these settings, once Redis records a layout (it never
    # changes after that); None until then.
    _refusal: str | None = field(init=False, default=None)
    _next_layout_read: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.keys = Keys.of(self.settings)
        self.redis = async_redis(self.settings)
        self.redis_bytes = async_redis(self.settings, decode=False)
        self.commands = CommandSender(self.redis, self.keys)

    async def command(self, op: Op, job_id: str, payload: dict[str, Any] | None = None) -> Outcome:
        """Have the leader apply a change; HTTPException with the right status if it can't."""
        try:
            outcome = await self.commands.send(
                op, job_id, payload, timeout=self.settings.command_timeout_seconds
            )
        except LeaderUnavailable as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from None
        if outcome.code == 422:  # same shape as FastAPI's own validation errors
            raise HTTPException(
                status_code=422,
                detail=[{"loc": ["body"], "msg": outcome.detail, "type": "value_error"}],
            )
        if outcome.code >= 400:
            raise HTTPException(status_code=outcome.code, detail=outcome.detail)
        return outcome

    async def refusal(self) -> str:
        """Why this replica must not serve (its settings do not fit the data's layout), in one
        line; empty if it may. Read from Redis at most once a second until a layout is
        recorded, then never again. Raises Redis trouble."""
        if self._refusal is not None:
            return self._refusal
        now = time.monotonic()
        if now < self._next_layout_read:
            return ""
        self._next_layout_read = now + LAYOUT_REREAD_SECONDS
        layout = await read_layout(self.redis, self.keys)
        problem = layout.problem(self.keys)
        if layout.shards is not None or problem:
            self._refusal = problem
        return problem

    async def close(self) -> None:
        await self.redis.aclose()
        await self.redis_bytes.aclose()


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.tickonce
    return state
