"""Catching up after downtime, bounded: whatever the downtime, one wakeup decides at most
``CHUNK`` overdue fire times of a job (and ``WAKEUP_BUDGET`` across all jobs), and fire times
decided without running are recorded as counted ranges, so the ledger accounts for every one
of them without one entry per time.

A job far behind (14 days of a minutely job: 20,160 fire times) is brought up to date over a
few consecutive wakeups, each a short step that never keeps the leader from renewing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from apscheduler.job import Job

from services.core.ledger import Claim, RunRecord, Status

CHUNK = 1000  # overdue fire times of one job decided in one wakeup, at most
WAKEUP_BUDGET = 2_000  # trigger steps of one wakeup across all jobs (~30 ms; the rest wait)


def overdue(job: Job, now: datetime, limit: int) -> list[datetime]:
    """Up to ``limit`` fire times of ``job`` due at ``now``, oldest first."""
    times: list[datetime] = []
    at: datetime | None = job.next_run_time
    while at is not None and at <= now and len(times) < limit:
        times.append(at)
        at = job.trigger.get_next_fire_time(at, now)
    return times


def not_run(
    job_id: str,
    times: Sequence[datetime],
    status: Status,
    reason: str,
    *,
    runner: str,
    epoch: int,
    now: datetime,
) -> tuple[Claim, RunRecord]:
    """The ledger entry of fire times decided without running: one entry, a counted range
    when there are several. (The claim names the entry's newest fire time.)"""
    first, last = times[0], times[-1]
    record = RunRecord(
        job_id,
        first,
        status,
        runner,
        epoch,
        finished_at=now,
        reason=reason,
        count=len(times),
        until=last if len(times) > 1 else None,
    )
    return Claim(job_id, last, runner, epoch, now), record
