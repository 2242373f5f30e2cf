"""A 3-second async job allowed one instance at a time, logging each body's start and end
(see body_log.py)."""

from __future__ import annotations

import asyncio

from tests.support.body_log import write
from tickonce._jobs.registry import job


@job("interval", seconds=1, id="long", max_instances=1, misfire_grace_time=30)
async def long() -> None:
    write("start")
    try:
        await asyncio.sleep(3)
    finally:
        write("end")  # also when stopped (cancelled)
