"""Response models of the API (they are the OpenAPI schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tickonce._control.reads import RunRecord
from tickonce._firing.outcome import Status
from tickonce._leadership.membership import Member


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong, and what to do about it.")


class StatusOut(BaseModel):
    status: Literal["ok", "ready"]


class RunOut(BaseModel):
    entry: str = Field(
        "", description="The ledger entry's id: pass it as `before` for the next page."
    )
    job_id: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    status: Status
    reason: str = Field(
        description="Why it did not succeed: a code (exception, timeout, cancelled, crashed, "
        "slot_lost, runner_lost, claim_not_durable, max_instances, unknown_task, coalesced, "
        "catch_up, missed), possibly followed by a detail; empty for a success."
    )
    duration_ms: float | None
    runner: str = Field(description="host:pid:nonce of the process that ran or recorded it.")
    epoch: int = Field(description="Fencing epoch of the leader term that claimed it.")
    error: str
    manual: bool = Field(description="A run-now from the API rather than a scheduled fire.")
    count: int = Field(
        1,
        description="Fire times this entry stands for: more than 1 for a range of fire "
        "times decided together without running (missed or skipped after downtime).",
    )
    until: datetime | None = Field(
        None, description="The last fire time of a range (scheduled_at is the first)."
    )

    @classmethod
    def of(cls, record: RunRecord, entry: str = "") -> RunOut:
        return cls(**{**record.__dict__, "manual": bool(record.manual), "entry": entry})


class MemberOut(BaseModel):
    id: str = Field(description="host:pid:nonce (the nonce is new with each process start)")
    role: Literal["leader", "standby", "retiring"] = Field(
        description="leader of at least one shard, standby, or retiring: stopping, taking no "
        "lease while it finishes its requests and runs."
    )
    mode: str = Field(description="scheduler (service) or embedded (API worker).")
    epoch: int | None = Field(description="Shard 0's epoch while this member leads it.")
    last_seen_ms_ago: int
    shards: list[int] = Field(description="The shards this member leads.")

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        fields = {**member.__dict__, "shards": sorted(member.shards)}
        return cls(id=fields.pop("runner_id"), **fields)


class ShardOut(BaseModel):
    shard: int
    leader: str | None = Field(description="host:pid:nonce of the lease holder, None if none.")
    epoch: int | None = Field(description="The shard's current fencing epoch.")
    lease_expires_in_ms: int | None


class SchedulerOut(BaseModel):
    leader: str | None = Field(
        description="host:pid:nonce of shard 0's lease holder (the only shard unless "
        "SCHEDULER_SHARDS is set), None if none."
    )
    epoch: int | None = Field(description="Shard 0's current fencing epoch.")
    lease_expires_in_ms: int | None
    shards: list[ShardOut] = Field(description="Every shard's leader (SCHEDULER_SHARDS).")
    members: list[MemberOut]
