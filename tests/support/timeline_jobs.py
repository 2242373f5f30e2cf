"""Job bodies that write what they did to a local file (BODY_LOG), one JSON line per event,
with CLOCK_MONOTONIC times (the same clock as the scheduler's event loop, in every process):
evidence from inside the worker processes, independent of Redis."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import redis

from tickonce._config.settings import get_settings
from tickonce._jobs.registry import current_run
from tickonce._storage.keys import Keys


def note(event: str, **extra: Any) -> None:
    run = current_run()
    line = {"event": event, "job": run.job_id, "at": time.monotonic(), **extra}
    with open(os.environ["BODY_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps(line) + "\n")


def events(path: Path, job_id: str | None = None, event: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [
        line
        for line in lines
        if (job_id is None or line["job"] == job_id) and (event is None or line["event"] == event)
    ]


async def beat() -> None:
    note("start")


async def slow() -> None:
    note("start")
    await asyncio.sleep(1.5)
    settings = get_settings()
    with redis.Redis.from_url(settings.redis_url) as client:
        note("end", lease_held=bool(client.exists(Keys(settings.key_prefix).lease)))


async def endless() -> None:
    note("start")
    await asyncio.sleep(60)
