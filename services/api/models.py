"""Response models of the API (they are the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from apscheduler.job import Job
from pydantic import BaseModel, Field

from services.core.ledger import RunRecord
from services.core.membership import Member


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, and what to do about it.")


class StatusOut(BaseModel):
    status: Literal["ok", "ready"]


# A field named kwargs clashes with __init__(**kwargs) for the pydantic mypy plugin; the name is
# APScheduler's, so it stays.
class JobOut(BaseModel):  # type: ignore[no-redef]
    id: str
    name: str
    task: str = Field(description="The registered job function this schedule runs.")
    trigger: str = Field(description="APScheduler's description, e.g. interval[0:00:01].")
    next_run_time: datetime | None = Field(description="None while paused.")
    paused: bool
    max_instances: int
    misfire_grace_time: int | None = Field(description="Seconds; None means no limit.")
    coalesce: bool
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            name=job.name,
            task=str(job.args[0]) if job.args else job.id,
            trigger=str(job.trigger),
            next_run_time=job.next_run_time,
            paused=job.next_run_time is None,
            max_instances=job.max_instances,
            misfire_grace_time=job.misfire_grace_time,
            coalesce=job.coalesce,
            kwargs=dict(job.kwargs),
        )


class RunOut(BaseModel):
    job_id: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: Literal["succeeded", "failed", "skipped", "missed"]
    reason: str
    duration_ms: float | None
    runner: str = Field(description="host:pid of the process that ran or recorded it.")
    epoch: int = Field(description="Fencing epoch of the leader term that claimed it.")
    error: str

    @classmethod
    def of(cls, record: RunRecord) -> RunOut:
        return cls(**record.__dict__)


class MemberOut(BaseModel):
    id: str = Field(description="host:pid")
    role: Literal["leader", "standby"]
    mode: str = Field(description="scheduler (service) or embedded (API worker).")
    epoch: int | None
    last_seen_ms_ago: int

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        return cls(**member.__dict__)


class SchedulerOut(BaseModel):
    leader: str | None = Field(description="host:pid of the lease holder, None if none.")
    epoch: int | None = Field(description="The current fencing epoch.")
    lease_expires_in_ms: int | None
    members: list[MemberOut]
