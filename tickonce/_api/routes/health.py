"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from tickonce._api.error_handlers import TickonceRoute
from tickonce._api.models import ErrorOut, StatusOut
from tickonce._api.state import ApiState, get_state
from tickonce._storage.clients import REDIS_TROUBLE

router = APIRouter(tags=["health"], route_class=TickonceRoute)


@router.get(
    "/healthz",
    response_model=StatusOut,
    responses={
        503: {
            "model": ErrorOut,
            "description": "This replica's SCHEDULER_SHARDS or version does not fit the data "
            "in Redis: restarting it with the right settings is the cure.",
        }
    },
    summary="Liveness: the process answers, configured for the data it serves",
)
async def healthz() -> StatusOut:
    return StatusOut(status="ok")


@router.get(
    "/readyz",
    response_model=StatusOut,
    responses={
        503: {
            "model": ErrorOut,
            "description": "Redis does not answer, or its data is laid out for another "
            "SCHEDULER_SHARDS or stored in a format this version does not read.",
        }
    },
    summary="Readiness: Redis answers, its data laid out for this version and shard count",
)
async def readyz(state: Annotated[ApiState, Depends(get_state)]) -> StatusOut | JSONResponse:
    settings = state.settings
    try:
        await state.redis.ping()
        problem = await state.refusal()
    except REDIS_TROUBLE as exc:
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"Redis at {settings.redacted_redis_url} does not answer: "
                f"{settings.redact(str(exc))}"
            },
        )
    if problem:
        return JSONResponse(status_code=503, content={"detail": problem})
    return StatusOut(status="ready")
