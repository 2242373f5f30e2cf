"""Decide: which of a job's due fire times run, and how each of the others ends.

Pure functions of the job, its policy and the time lateness is judged by; no I/O. Rules:

- ``misfire_grace_time``: a fire time later than the grace is ``missed``.
- catch-up (``RunPolicy.catch_up``) for fire times missed during downtime or a failover, within
  the grace: ``coalesce`` runs the newest and records the others ``skipped: coalesced``; ``all``
  runs each; ``skip`` runs none that is more than ``CATCH_UP_AFTER`` late.
- A backlog is bounded: one wakeup decides at most ``CHUNK`` overdue fire times of a job (and
  ``WAKEUP_BUDGET`` trigger steps across all jobs); a job further behind has a chunk decided
  without running (a counted range in the ledger) and is moved past it, so 14 days of a
  minutely job (20,160 fire times) are brought up to date over a few short wakeups.
- Lateness is judged from when the scheduler began working through the backlog that held a
  fire time (``BacklogClock``), not from when its turn came: a burst due at one instant (100k
  reports at midnight) is taken in over several wakeups, and the time that takes is the
  scheduler's own, not downtime. Excused up to ``BACKLOG_EXCUSE``: a backlog that never ends
  is overload, and then the grace applies again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.job import Job

from tickonce._firing.outcome import Reason, Status
from tickonce._jobs.policy import RunPolicy

CHUNK = 1000  # overdue fire times of one job decided in one wakeup, at most
WAKEUP_BUDGET = 2_000  # trigger steps of one wakeup across all jobs (~30 ms; the rest wait)
CATCH_UP_AFTER = timedelta(seconds=1)  # a fire time handed over later is being caught up
BACKLOG_EXCUSE = timedelta(seconds=60)

CATCH_UP_SKIP = Reason.CATCH_UP.detailed("skip", "=")


@dataclass
class Decision:
    """A job's due fire times, decided: those to run (oldest first), and ranges of those that
    will not run, each one ledger entry with its status and reason."""

    to_run: list[datetime] = field(default_factory=list)
    not_run: list[tuple[list[datetime], Status, str]] = field(default_factory=list)

    def add_not_run(self, times: list[datetime], status: Status, reason: str) -> None:
        if times:
            self.not_run.append((times, status, reason))

    @property
    def missed(self) -> list[datetime]:
        return [at for times, status, _ in self.not_run if status == Status.MISSED for at in times]


def due(job: Job, times: list[datetime], judged_at: datetime) -> Decision:
    """Decide ``times``, the fire times of ``job`` now due (see ``overdue``; at most
    ``CHUNK``), lateness judged at ``judged_at``."""
    policy = RunPolicy.of(job)
    decision = Decision()
    if job.coalesce:  # only the newest is a candidate to run (APScheduler's flag)
        skipped = CATCH_UP_SKIP if policy.catch_up == "skip" else Reason.COALESCED
        decision.add_not_run(times[:-1], Status.SKIPPED, skipped)
        times = times[-1:]
    grace = job.misfire_grace_time
    missed, skipped_times = [], []
    for at in times:
        late = judged_at - at
        if grace is not None and late > timedelta(seconds=grace):
            missed.append(at)
        elif policy.catch_up == "skip" and late > CATCH_UP_AFTER:
            skipped_times.append(at)
        else:
            decision.to_run.append(at)
    if len(missed) == 1:
        late_by = (judged_at - missed[0]).total_seconds()
        decision.add_not_run(
            missed, Status.MISSED, Reason.MISSED.detailed(f"by {late_by:.3f}s", " ")
        )
    else:
        decision.add_not_run(
            missed, Status.MISSED, Reason.MISSED.detailed(f"more than {grace}s late")
        )
    decision.add_not_run(skipped_times, Status.SKIPPED, CATCH_UP_SKIP)
    return decision


def backlog_chunk(job: Job, times: list[datetime], judged_at: datetime) -> Decision:
    """Decide a chunk of the fire times of a job more than ``CHUNK`` behind, none of them run:
    those past the grace ``missed``, the rest as its catch-up policy says."""
    grace = job.misfire_grace_time
    cutoff = judged_at - timedelta(seconds=grace) if grace is not None else None
    missed = [at for at in times if cutoff is not None and at < cutoff]
    reason = {
        "coalesce": Reason.COALESCED,
        "skip": CATCH_UP_SKIP,
        "all": Reason.CATCH_UP.detailed(f"all: more than {CHUNK} overdue at once", "="),
    }[RunPolicy.of(job).catch_up]
    decision = Decision()
    decision.add_not_run(missed, Status.MISSED, Reason.MISSED.detailed(f"more than {grace}s late"))
    decision.add_not_run(times[len(missed) :], Status.SKIPPED, reason)
    return decision


def overdue(job: Job, now: datetime, limit: int) -> list[datetime]:
    """Up to ``limit`` fire times of ``job`` due at ``now``, oldest first."""
    times: list[datetime] = []
    at: datetime | None = job.next_run_time
    while at is not None and at <= now and len(times) < limit:
        times.append(at)
        at = job.trigger.get_next_fire_time(at, now)
    return times


class BacklogClock:
    """The time lateness is judged by, wakeup after wakeup (see the module's rules)."""

    def __init__(self, now: datetime) -> None:
        self._since: datetime | None = None
        self.judged_at = now

    def begin(self, now: datetime, *, more_due: bool) -> datetime:
        """A wakeup starts at ``now``; ``more_due``: it takes in a full batch of due jobs, so
        more may be waiting behind them. Returns the time this wakeup judges lateness by."""
        since = self._since or now
        self.judged_at = max(since, now - BACKLOG_EXCUSE)
        self._since = since if more_due else None
        return self.judged_at
