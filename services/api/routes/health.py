"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from services.api.errors import TickonceRoute
from services.api.models import ErrorOut, StatusOut
from services.api.state import ApiState, get_state
from services.core.connection import REDIS_ERRORS
from services.core.layout import layout_mismatch, recorded_shards

router = APIRouter(tags=["health"], route_class=TickonceRoute)


@router.get("/healthz", response_model=StatusOut, summary="Liveness: the process answers")
async def healthz() -> StatusOut:
    return StatusOut(status="ok")


@router.get(
    "/readyz",
    response_model=StatusOut,
    responses={
        503: {
            "model": ErrorOut,
            "description": "Redis does not answer, or its data is laid out for another "
            "SCHEDULER_SHARDS.",
        }
    },
    summary="Readiness: Redis answers, laid out for this shard count",
)
async def readyz(state: Annotated[ApiState, Depends(get_state)]) -> StatusOut | JSONResponse:
    settings = state.settings
    try:
        recorded = await recorded_shards(state.redis, state.keys)
    except REDIS_ERRORS as exc:
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"Redis at {settings.redacted_redis_url} does not answer: "
                f"{settings.redact(str(exc))}"
            },
        )
    if recorded is not None and recorded != state.keys.shards:
        return JSONResponse(
            status_code=503, content={"detail": layout_mismatch(state.keys, recorded)}
        )
    return StatusOut(status="ready")
