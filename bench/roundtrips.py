"""Redis round trips per fire, counted on the client: every request write of redis-py's sync
and asyncio connections (a pipeline or a Lua call is one), in a leader running in-process."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import redis.asyncio.connection as async_connection
import redis.connection as sync_connection

from bench.runs import ledger
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._jobs.registry import Registry
from tickonce._leadership.contender import Contender
from tickonce._storage.keys import Keys

_counts = {"sync": 0, "async": 0}


@contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Count request writes while inside."""
    sync_send: Callable[..., Any] = sync_connection.AbstractConnection.send_packed_command
    async_send: Callable[..., Any] = async_connection.AbstractConnection.send_packed_command

    def counted_sync(self: Any, *args: Any, **kwargs: Any) -> Any:
        _counts["sync"] += 1
        return sync_send(self, *args, **kwargs)

    async def counted_async(self: Any, *args: Any, **kwargs: Any) -> Any:
        _counts["async"] += 1
        return await async_send(self, *args, **kwargs)

    sync_connection.AbstractConnection.send_packed_command = counted_sync  # type: ignore[method-assign]
    async_connection.AbstractConnection.send_packed_command = counted_async  # type: ignore[method-assign]
    try:
        yield _counts
    finally:
        sync_connection.AbstractConnection.send_packed_command = sync_send  # type: ignore[method-assign]
        async_connection.AbstractConnection.send_packed_command = async_send  # type: ignore[method-assign]


@dataclass
class RoundTrips:
    jobs: int
    fires: int
    seconds: float
    total: int
    idle_per_second: float

    @property
    def per_fire(self) -> float:
        return self.total / self.fires

    @property
    def marginal_per_fire(self) -> float:
        """Per fire, without what an idle leader spends anyway (renewals, heartbeats, polls)."""
        return (self.total - self.idle_per_second * self.seconds) / self.fires


async def _lead(
    settings: Settings,
    jobs: Registry,
    warmup: float,
    seconds: float,
    counts: dict[str, int],
    on_window: Callable[[float, float], None],
) -> int:
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    await asyncio.sleep(warmup)
    before = counts["sync"] + counts["async"]
    start = time.time()
    await asyncio.sleep(seconds)
    total = counts["sync"] + counts["async"] - before
    on_window(start, time.time())
    await contender.stop()
    await running
    return total


async def noop() -> None:
    """The job body: module-level, so the worker processes can import it."""


def measure_round_trips(server: RedisServer, jobs: int, seconds: float = 8) -> RoundTrips:
    idle = _run(server, 0, seconds)[0] / seconds
    total, fires, window = _run(server, jobs, seconds)
    return RoundTrips(jobs, fires, window, total, idle)


def _run(server: RedisServer, jobs: int, seconds: float) -> tuple[int, int, float]:
    prefix = f"bench-rt-{uuid.uuid4().hex[:6]}:"
    settings = Settings(
        redis_url=server.url, key_prefix=prefix, jobs_modules=[], log_level="WARNING"
    )
    registry = Registry()
    ids = [f"rt-{n:04d}" for n in range(jobs)]
    for job_id in ids:
        registry.job("interval", seconds=1, id=job_id)(noop)
    window: list[float] = []
    with counting() as counts:
        total = asyncio.run(
            _lead(
                settings,
                registry,
                3.0,
                seconds,
                counts,
                lambda start, end: window.extend([start, end]),
            )
        )
    start, end = window
    fired = [
        e
        for e in ledger(server.client(), Keys(prefix), ids)
        if start <= e.scheduled_at.timestamp() < end
    ]
    return total, len(fired), end - start
