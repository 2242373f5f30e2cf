"""Who leads, and who stands by."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from services.api.errors import TickonceRoute
from services.api.models import MemberOut, SchedulerOut
from services.api.state import ApiState, get_state
from services.core.lease import read_leader
from services.core.membership import live_members

router = APIRouter(tags=["scheduler"], route_class=TickonceRoute)


@router.get("/scheduler", response_model=SchedulerOut, summary="Leader, epoch and live members")
async def scheduler_status(state: Annotated[ApiState, Depends(get_state)]) -> SchedulerOut:
    leader = await read_leader(state.redis, state.keys)
    window_ms = int(state.settings.member_window_seconds * 1000)
    members = await live_members(state.redis, state.keys, window_ms)
    return SchedulerOut(
        leader=leader.leader,
        epoch=leader.epoch,
        lease_expires_in_ms=leader.expires_in_ms,
        members=[MemberOut.of(member) for member in members],
    )
