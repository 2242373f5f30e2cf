"""Jobs and their run history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query

from services.api.models import ErrorOut, JobOut, RunOut
from services.api.state import ApiState, get_state
from services.core.jobstore import read_job, read_jobs

router = APIRouter(prefix="/jobs", tags=["jobs"])

State = Annotated[ApiState, Depends(get_state)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No job with this id."}
}


@router.get("", response_model=list[JobOut], summary="All scheduled jobs")
async def list_jobs(state: State) -> list[JobOut]:
    return [JobOut.of(job) for job in await read_jobs(state.redis_bytes, state.keys)]


@router.get("/{job_id}", response_model=JobOut, responses=NOT_FOUND, summary="One job")
async def get_job(job_id: str, state: State) -> JobOut:
    job = await read_job(state.redis_bytes, state.keys, job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
    return JobOut.of(job)


@router.get(
    "/{job_id}/runs",
    response_model=list[RunOut],
    responses=NOT_FOUND,
    summary="A job's run ledger, newest first",
)
async def list_runs(
    job_id: str,
    state: State,
    limit: Annotated[int, Query(ge=1, le=1000, description="Entries to return.")] = 50,
) -> list[RunOut]:
    runs = await state.ledger.recent(job_id, limit)
    if not runs and await read_job(state.redis_bytes, state.keys, job_id) is None:
        raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
    return [RunOut.of(run) for run in runs]
