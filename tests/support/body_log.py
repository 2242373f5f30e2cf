"""Each job body's start and end, logged to a local file (OVERLAP_LOG) from inside its worker:
a record independent of Redis, complete even while a process is cut off from Redis."""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

from tickonce._jobs.registry import current_run


def write(event: str) -> None:
    run = current_run()
    line = json.dumps(
        {
            "event": event,
            "job": run.job_id,
            "at": time.time(),
            "runner": run.runner,
            "epoch": run.epoch,
            "scheduled_at": run.scheduled_at.isoformat(),
        }
    )
    with open(os.environ["OVERLAP_LOG"], "a", encoding="utf-8") as log:
        log.write(line + "\n")


def body_intervals(path: str, job_id: str) -> list[tuple[float, float, str, int]]:
    """(start, end, runner, epoch) of every body of ``job_id`` that started, ends matched."""
    starts: dict[str, dict[str, Any]] = {}
    intervals = []
    with open(path, encoding="utf-8") as log:
        for line in log:
            event = json.loads(line)
            if event["job"] != job_id:
                continue
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
