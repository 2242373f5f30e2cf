"""Jobs: read them and their run history; change them through the leader (with the token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from tickonce._api.auth import AUTH_ERRORS, WriteAccess
from tickonce._api.error_handlers import TickonceRoute
from tickonce._api.models import ErrorOut, RunOut
from tickonce._api.state import ApiState, get_state
from tickonce._control.reads import (
    JOBS_PAGE_DEFAULT,
    JOBS_PAGE_MAX,
    JobView,
    job_page,
    read_job,
    run_page,
)
from tickonce._exceptions import JobDefinitionError, UnknownTaskError, UnreadableJobError
from tickonce._jobs.registry import check_kwargs, registry
from tickonce._jobs.schedules import JobCreate, JobUpdate
from tickonce._jobs.tasks import resolve

router = APIRouter(prefix="/jobs", tags=["jobs"], route_class=TickonceRoute)

State = Annotated[ApiState, Depends(get_state)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No job with this id."}
}
CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    503: {
        "model": ErrorOut,
        "description": "No leader applied the change in time (not "
        "applied), or Redis is unavailable.",
    },
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "The change conflicts with the job's state."}
}


async def existing(state: ApiState, job_id: str) -> JobView:
    try:
        job = await read_job(state.redis_bytes, state.keys, job_id)
    except UnreadableJobError as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from None
    if job is None:
        raise HTTPException(status_code=404, detail=f"job {job_id!r} not found")
    return JobView.of(job)


def applied(job: dict[str, Any] | None) -> JobView:
    assert job is not None, "the leader answers changes with the job"
    return JobView.model_validate(job)


def unprocessable(message: str, *loc: str) -> HTTPException:
    return HTTPException(
        status_code=422, detail=[{"loc": ["body", *loc], "msg": message, "type": "value_error"}]
    )


@router.get(
    "",
    response_model=list[JobView],
    summary="Scheduled jobs, a page at a time, ordered by id",
    description=f"At most `limit` jobs (default {JOBS_PAGE_DEFAULT}, at most {JOBS_PAGE_MAX}) "
    "with ids after `after`. When more may follow, the response has a `Link` header with "
    '`rel="next"`: follow it until there is none. With a filter, a page may hold fewer than '
    "`limit` jobs (a page looks at a bounded number of jobs) and still have a next page.",
)
async def list_jobs(
    request: Request,
    response: Response,
    state: State,
    limit: Annotated[
        int, Query(ge=1, le=JOBS_PAGE_MAX, description="Jobs to return, at most.")
    ] = JOBS_PAGE_DEFAULT,
    after: Annotated[str, Query(description="Return jobs whose id sorts after this.")] = "",
    paused: Annotated[
        bool | None, Query(description="Only paused (true) or only scheduled (false) jobs.")
    ] = None,
    task: Annotated[
        str | None, Query(description="Only jobs that run this registered task.")
    ] = None,
    search: Annotated[
        str, Query(max_length=200, description="Only jobs whose id contains this (any case).")
    ] = "",
) -> list[JobView]:
    page = await job_page(
        state.redis_bytes,
        state.keys,
        limit=limit,
        after=after,
        paused=paused,
        task=task,
        search=search,
    )
    if page.next_after is not None:
        following = request.url.include_query_params(after=page.next_after)
        response.headers["Link"] = f'<{following}>; rel="next"'
    return [JobView.of(job) for job in page.jobs]


@router.get("/{job_id}", response_model=JobView, responses=NOT_FOUND, summary="One job")
async def get_job(job_id: str, state: State) -> JobView:
    return await existing(state, job_id)


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
    before: Annotated[
        str,
        Query(description="Only entries older than this entry id (a previous page's last)."),
    ] = "",
) -> list[RunOut]:
    try:
        runs = await run_page(state.redis, state.keys, job_id, limit=limit, before=before)
    except ValueError as exc:
        raise HTTPException(
            status_code=422,
            detail=[{"loc": ["query", "before"], "msg": str(exc), "type": "value_error"}],
        ) from None
    if not runs and not before:
        await existing(state, job_id)
    return [RunOut.of(run, entry) for entry, run in runs]


@router.post(
    "/{job_id}/pause",
    response_model=JobView,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, **CHANGE_ERRORS},
    summary="Pause a job (idempotent)",
)
async def pause_job(job_id: str, state: State) -> JobView:
    await existing(state, job_id)
    return applied((await state.command("pause", job_id)).job)


@router.post(
    "/{job_id}/resume",
    response_model=JobView,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, **CONFLICT, **CHANGE_ERRORS},
    summary="Resume a paused job (idempotent)",
)
async def resume_job(job_id: str, state: State) -> JobView:
    await existing(state, job_id)
    return applied((await state.command("resume", job_id)).job)


@router.post(
    "/{job_id}/run",
    response_model=JobView,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, **CHANGE_ERRORS},
    summary="Run a job once now (recorded in its ledger as manual)",
)
async def run_job_now(job_id: str, state: State) -> JobView:
    await existing(state, job_id)
    return applied((await state.command("run", job_id)).job)


@router.patch(
    "/{job_id}",
    response_model=JobView,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, **CHANGE_ERRORS},
    summary="Change a job's trigger, options or kwargs (a paused job stays paused)",
)
async def update_job(job_id: str, body: JobUpdate, state: State) -> JobView:
    job = await existing(state, job_id)
    if body.kwargs is not None:
        try:
            check_kwargs(job_id, resolve(job.task).func, body.kwargs)
        except (UnknownTaskError, JobDefinitionError) as exc:
            raise unprocessable(str(exc), "kwargs") from None
    payload = body.model_dump(mode="json", exclude_unset=True)
    return applied((await state.command("update", job_id, payload)).job)


@router.post(
    "",
    response_model=JobView,
    status_code=201,
    dependencies=[WriteAccess],
    responses={**CONFLICT, **CHANGE_ERRORS},
    summary="Schedule a registered task under a new id",
)
async def create_job(body: JobCreate, state: State) -> JobView:
    try:
        task = resolve(body.task)
    except UnknownTaskError:
        known = ", ".join(sorted(spec.id for spec in registry.specs())) or "none"
        raise unprocessable(
            f"unknown task {body.task!r}; registered tasks: {known}", "task"
        ) from None
    try:
        check_kwargs(body.id, task.func, body.kwargs)
    except JobDefinitionError as exc:
        raise unprocessable(str(exc), "kwargs") from None
    if await state.redis_bytes.hexists(state.keys.of_job(body.id).jobs, body.id):
        raise HTTPException(
            status_code=409,
            detail=f"a job with id {body.id!r} already exists; choose another id or PATCH it",
        )
    payload = body.model_dump(mode="json", exclude_unset=True)
    return applied((await state.command("create", body.id, payload)).job)


@router.delete(
    "/{job_id}",
    status_code=204,
    response_class=Response,
    dependencies=[WriteAccess],
    responses={**NOT_FOUND, **CONFLICT, **CHANGE_ERRORS},
    summary="Delete a job created through the API (its history stays)",
)
async def delete_job(job_id: str, state: State) -> Response:
    await existing(state, job_id)
    await state.command("delete", job_id)
    return Response(status_code=204)
