"""An in-process contender leading for a while: the shortest way to run a leader in a test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from services.core.contender import Contender
from services.core.registry import Registry
from services.core.settings import Settings


async def lead_for(settings: Settings, jobs: Registry, seconds: float) -> None:
    """Run a scheduler-mode contender of ``jobs`` for ``seconds``, then stop it gracefully."""
    await lead_until(settings, jobs, lambda: False, seconds)


async def lead_until(
    settings: Settings, jobs: Registry, done: Callable[[], bool], timeout: float
) -> None:
    """Run a scheduler-mode contender of ``jobs`` until ``done()`` (checked every 0.2 s) or
    ``timeout`` seconds, then stop it gracefully."""
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    try:
        for _ in range(round(timeout / 0.2)):
            if done():
                break
            await asyncio.sleep(0.2)
    finally:
        await contender.stop()
        await running
