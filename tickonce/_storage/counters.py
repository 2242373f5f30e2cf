"""Every counter name: the fields of the ``counters`` hash that /metrics renders.

The Lua calls that record runs, refuse claims and take the lease count as they go (no extra
round trip on the hot path); they take these names from here, and _control/metrics.py parses
them back. A job's own counters carry its id as the second ``SEP``-separated part
(_jobs/retention.py forgets them by that)."""

from __future__ import annotations

import bisect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickonce._firing.record import RunRecord

SEP = "|"  # job ids cannot contain it (see schedules.JOB_ID_PATTERN)

CLAIMS_REFUSED_TAKEN = "claims_refused_taken"  # a fire time already decided
CLAIMS_REFUSED_STALE_EPOCH = "claims_refused_stale_epoch"  # a deposed leader's plan
CLAIMS_REFUSED = {"taken": CLAIMS_REFUSED_TAKEN, "stale_epoch": CLAIMS_REFUSED_STALE_EPOCH}
LEASE_ACQUISITIONS = "lease_acquisitions"
LEASE_RENEWAL_FAILURES = "lease_renewal_failures"

RUNS = "runs"  # runs|<job>|<status>: fire times recorded (a counted range adds its count)
LATENESS = "lateness"  # lateness|<job>|<bucket index>, and lateness_sum|<job>
DURATION = "duration"  # duration|<job>|<bucket index>, and duration_sum|<job>

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
BUCKETS = {LATENESS: LATENESS_BUCKETS, DURATION: DURATION_BUCKETS}


def run_increments(record: RunRecord) -> list[tuple[str, float]]:
    """Counter increments for one recorded run: its status, and the lateness and duration
    histograms when its body ran."""
    job = record.job_id
    increments = [(f"{RUNS}{SEP}{job}{SEP}{record.status}", float(record.count))]
    if record.started_at is not None and not record.manual:
        lateness = max(0.0, (record.started_at - record.scheduled_at).total_seconds())
        increments += _observe(LATENESS, job, lateness)
    if record.duration_ms is not None:
        increments += _observe(DURATION, job, record.duration_ms / 1000)
    return increments


def _observe(name: str, job: str, value: float) -> list[tuple[str, float]]:
    bucket = bisect.bisect_left(BUCKETS[name], value)  # index len(buckets) is +Inf
    return [(f"{name}{SEP}{job}{SEP}{bucket}", 1.0), (f"{name}_sum{SEP}{job}", value)]


def flat(increments: list[tuple[str, float]]) -> list[str | float]:
    """``[count, field, value, field, value, ...]`` as the recording Lua scripts take them."""
    return [len(increments), *(part for pair in increments for part in pair)]


def counter_names(script: str) -> str:
    """A Lua script with the counter names it uses filled in (``{CLAIMS_REFUSED_TAKEN}``...)."""
    names = {
        "CLAIMS_REFUSED_TAKEN": CLAIMS_REFUSED_TAKEN,
        "CLAIMS_REFUSED_STALE_EPOCH": CLAIMS_REFUSED_STALE_EPOCH,
        "LEASE_ACQUISITIONS": LEASE_ACQUISITIONS,
    }
    for name, value in names.items():
        script = script.replace("{" + name + "}", value)
    return script
