"""Liveness and readiness."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from services.api.errors import TickonceRoute
from services.api.models import ErrorOut, StatusOut
from services.api.state import ApiState, get_state

router = APIRouter(tags=["health"], route_class=TickonceRoute)


@router.get("/healthz", response_model=StatusOut, summary="Liveness: the process answers")
async def healthz() -> StatusOut:
    return StatusOut(status="ok")


@router.get(
    "/readyz",
    response_model=StatusOut,
    responses={503: {"model": ErrorOut, "description": "Redis does not answer."}},
    summary="Readiness: Redis answers",
)
async def readyz(state: Annotated[ApiState, Depends(get_state)]) -> StatusOut | JSONResponse:
    try:
        await state.redis.ping()
    except RedisError as exc:
        settings = state.settings
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"Redis at {settings.redacted_redis_url} does not answer: "
                f"{settings.redact(str(exc))}"
            },
        )
    return StatusOut(status="ready")
