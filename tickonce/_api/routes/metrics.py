"""Prometheus metrics: cluster-wide figures read from Redis, the same from every worker."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from tickonce._api.error_handlers import TickonceRoute
from tickonce._api.state import ApiState, get_state
from tickonce._control.metrics import read_snapshot, render

router = APIRouter(tags=["metrics"], route_class=TickonceRoute)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text."}},
    summary="Runs by job and status, lateness and duration histograms, claims, lease, epoch",
)
async def metrics(state: Annotated[ApiState, Depends(get_state)]) -> Response:
    window_ms = int(state.settings.member_window_seconds * 1000)
    snapshot = await read_snapshot(state.redis, state.keys, window_ms)
    return Response(content=render(snapshot), media_type=CONTENT_TYPE_LATEST)
