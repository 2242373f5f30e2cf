"""What a job's runs do beyond APScheduler's options: catching up after downtime, a time limit.

Stored with the job itself (the second argument of ``tasks.run_task``), so it changes
atomically with the job in the fenced job store. Names follow Temporal's and Quartz's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from apscheduler.job import Job

CatchUp = Literal["coalesce", "all", "skip"]
CATCH_UPS: tuple[CatchUp, ...] = ("coalesce", "all", "skip")


@dataclass(frozen=True)
class RunPolicy:
    """``catch_up``: what to do with fire times missed during downtime or failover (within the
    misfire grace time): ``coalesce`` them into one run (default), run ``all`` of them, or
    ``skip`` them all. ``timeout``: seconds a run may take before it is stopped and recorded as
    failed (None: no limit)."""

    catch_up: CatchUp = "coalesce"
    timeout: float | None = None

    @property
    def coalesce(self) -> bool:
        """APScheduler's flag for this catch-up: it hands over only the latest due time."""
        return self.catch_up != "all"

    def as_arg(self) -> dict[str, Any]:
        return {"catch_up": self.catch_up, "timeout": self.timeout}

    @classmethod
    def of(cls, job: Job) -> RunPolicy:
        """A stored job's policy (jobs stored without one follow their coalesce flag)."""
        stored = job.args[1] if len(job.args) > 1 and isinstance(job.args[1], dict) else {}
        catch_up = stored.get("catch_up") or ("coalesce" if job.coalesce else "all")
        return cls(catch_up=cast(CatchUp, catch_up), timeout=stored.get("timeout"))


def resolve_catch_up(job_id: str, catch_up: str) -> CatchUp:
    """The catch-up policy named ``catch_up``; ValueError if there is none by that name."""
    if catch_up not in CATCH_UPS:
        raise ValueError(f"job {job_id!r}: catch_up must be one of {', '.join(CATCH_UPS)}")
    return catch_up


# Options that had a second spelling until 0.2 (one spelling per option since).
REMOVED_SPELLINGS = {
    "overlap": "use max_instances (1: skip a fire time while a run goes on; N: allow N at once)",
    "coalesce": "use catch_up ('coalesce', 'all' or 'skip')",
}


def removed_spellings(options: Mapping[str, Any], where: str = "") -> None:
    """ValueError naming the first removed spelling among ``options`` and its replacement
    (``where``: what the message begins with, such as the job)."""
    for name, instead in REMOVED_SPELLINGS.items():
        if name in options:
            raise ValueError(f"{where}{name} was removed in tickonce 0.2; {instead}")
