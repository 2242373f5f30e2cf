"""A team's own FastAPI app with tickonce included: `APP_MODULE=myapp.main:app`.

Its routes, dependency and lifespan are its own; `include_tickonce` adds tickonce's API and
status page under /tickonce and runs tickonce's lifespan around the app's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Request

from myapp.jobs import BEATS
from tickonce import Settings, include_tickonce


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.store = aioredis.Redis.from_url(Settings().redis_url, decode_responses=True)
    yield
    await app.state.store.aclose()


app = FastAPI(title="myapp", lifespan=lifespan)
include_tickonce(app, prefix="/tickonce")


def store(request: Request) -> aioredis.Redis:
    """The app's own dependency: its Redis client, made in its lifespan."""
    client: aioredis.Redis = request.app.state.store
    return client


@app.get("/hello")
async def hello(name: str = "world") -> dict[str, str]:
    return {"hello": name}


@app.get("/beats")
async def beats(client: Annotated[aioredis.Redis, Depends(store)]) -> dict[str, int]:
    """How many times each heartbeat fire time ran (every count is 1)."""
    counts = await client.hgetall(BEATS)
    return {str(at): int(count) for at, count in counts.items()}
