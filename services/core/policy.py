"""What a job's runs do beyond APScheduler's options: catching up after downtime, a time limit.

Stored with the job itself (the second argument of ``tasks.run_task``), so it changes
atomically with the job in the fenced job store. Names follow Temporal's and Quartz's.
"""

from __future__ import annotations

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


def resolve_catch_up(job_id: str, catch_up: str | None, coalesce: bool | None) -> CatchUp:
    """The catch-up policy from either spelling; ValueError if they disagree or are unknown."""
    if catch_up is not None and catch_up not in CATCH_UPS:
        raise ValueError(f"job {job_id!r}: catch_up must be one of {', '.join(CATCH_UPS)}")
    if catch_up is None:
        return "all" if coalesce is False else "coalesce"
    if coalesce is not None and coalesce != (catch_up != "all"):
        raise ValueError(
            f"job {job_id!r}: coalesce={coalesce} contradicts catch_up={catch_up!r}"
            "; give only catch_up"
        )
    return catch_up


def overlap_name(max_instances: int) -> str:
    """The overlap policy as users know it: "skip" (one run at a time) or "allow N"."""
    return "skip" if max_instances == 1 else f"allow {max_instances}"


def resolve_overlap(job_id: str, overlap: str | None, max_instances: int | None) -> int:
    """``max_instances`` from the overlap policy's name ("skip" or "allow N"), or as given;
    ValueError if the two disagree or the name is unknown."""
    if overlap is None:
        return 1 if max_instances is None else max_instances
    words = overlap.strip().lower().split()
    if words == ["skip"]:
        allowed = 1
    elif len(words) == 2 and words[0] == "allow" and words[1].isdigit() and int(words[1]) >= 1:
        allowed = int(words[1])
    else:
        raise ValueError(
            f"job {job_id!r}: overlap must be 'skip' or 'allow N' (N >= 1), not {overlap!r}"
        )
    if max_instances is not None and max_instances != allowed:
        raise ValueError(
            f"job {job_id!r}: overlap={overlap!r} contradicts "
            f"max_instances={max_instances}; give only one"
        )
    return allowed
