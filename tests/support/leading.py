"""An in-process contender leading for a while: the shortest way to run a leader in a test."""

from __future__ import annotations

import asyncio

from services.core.contender import Contender
from services.core.registry import Registry
from services.core.settings import Settings


async def lead_for(settings: Settings, jobs: Registry, seconds: float) -> None:
    """Run a scheduler-mode contender of ``jobs`` for ``seconds``, then stop it gracefully."""
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    try:
        await asyncio.sleep(seconds)
    finally:
        await contender.stop()
        await running
