"""A 3-second job allowed one instance at a time, logging each body's start and end to a local
file (OVERLAP_LOG): its own record, independent of Redis, so it is complete even while the
process is cut off from Redis."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from typing import Any

from services.core.registry import current_run, job


def _write(event: str) -> None:
    run = current_run()
    line = json.dumps(
        {
            "event": event,
            "at": time.time(),
            "runner": run.runner,
            "epoch": run.epoch,
            "scheduled_at": run.scheduled_at.isoformat(),
        }
    )
    with open(os.environ["OVERLAP_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")


@job("interval", seconds=1, id="long", max_instances=1, misfire_grace_time=30)
async def long() -> None:
    _write("start")
    try:
        await asyncio.sleep(3)
    finally:
        _write("end")  # also when stopped (cancelled)


def body_intervals(path: str) -> list[tuple[float, float, str, int]]:
    """(start, end, runner, epoch) of every body that started, ends matched by fire."""
    starts: dict[str, dict[str, Any]] = {}
    intervals = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            event = json.loads(line)
            key = f"{event['runner']}|{event['scheduled_at']}"
            if event["event"] == "start":
                starts[key] = event
            else:
                start = starts.pop(key)
                intervals.append(
                    (
                        float(start["at"]),
                        float(event["at"]),
                        str(event["runner"]),
                        int(event["epoch"]),
                    )
                )
    assert not starts, f"bodies that started and never ended: {list(starts)}"
    return sorted(intervals)


def overlaps(intervals: list[tuple[float, float, str, int]]) -> list[tuple[object, object]]:
    return [(a, b) for a, b in itertools.pairwise(intervals) if b[0] < a[1]]
