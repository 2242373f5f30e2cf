"""Who leads, and who stands by."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from tickonce._api.error_handlers import TickonceRoute
from tickonce._api.models import MemberOut, SchedulerOut, ShardOut
from tickonce._api.state import ApiState, get_state
from tickonce._leadership.lease import read_leader
from tickonce._leadership.membership import live_members

router = APIRouter(tags=["scheduler"], route_class=TickonceRoute)


@router.get("/scheduler", response_model=SchedulerOut, summary="Leader, epoch and live members")
async def scheduler_status(state: Annotated[ApiState, Depends(get_state)]) -> SchedulerOut:
    every = state.keys.every_shard()
    views = await asyncio.gather(*(read_leader(state.redis, keys) for keys in every))
    shards = [
        ShardOut(
            shard=keys.shard,
            leader=view.leader,
            epoch=view.epoch,
            lease_expires_in_ms=view.expires_in_ms,
        )
        for keys, view in zip(every, views, strict=True)
    ]
    window_ms = int(state.settings.member_window_seconds * 1000)
    members = await live_members(state.redis, state.keys, window_ms)
    return SchedulerOut(
        leader=shards[0].leader,
        epoch=shards[0].epoch,
        lease_expires_in_ms=shards[0].lease_expires_in_ms,
        shards=shards,
        members=[MemberOut.of(member) for member in members],
    )
