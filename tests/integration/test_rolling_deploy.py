"""Two code versions leading in turn (a rolling deploy, a rollback) never destroy each other's
state: a job one version does not define is kept while a live member's code defines it, its
paused state and run-time changes intact; a definition another live version holds as it
stands is not reverted; only when no live member defines a job is it removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import pytest
import redis
import redis.asyncio as aioredis
from apscheduler.schedulers.background import BackgroundScheduler

from services.core.fencing import LeaderTerm
from services.core.jobstore import FencedRedisJobStore
from services.core.jobsync import sync_registered_jobs
from services.core.keys import Keys
from services.core.membership import Membership
from services.core.registry import Registry
from tests.support.redis_server import RedisServer

WINDOW_MS = 60_000


def work() -> None: ...


def version(**intervals: int) -> Registry:
    jobs = Registry()
    for job_id, seconds in intervals.items():
        jobs.job("interval", id=job_id, seconds=seconds)(work)
    return jobs


NEW = version(a=5, b=7)  # the new code: defines b, and a every 5 s
OLD = version(a=9)  # the old code: no b, and a every 9 s


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
async def aclient(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    await connection.aclose()


async def member(aclient: aioredis.Redis, keys: Keys, member_id: str, code: Registry) -> Membership:
    """A live contender running ``code``, as every contender announces itself."""
    membership = Membership(aclient, keys, member_id, "scheduler", WINDOW_MS)
    await membership.publish_jobs({spec.id: spec.fingerprint for spec in code.specs()})
    await membership.beat("standby", None)
    return membership


def leads(raw: redis.Redis, keys: Keys, member_id: str, code: Registry) -> BackgroundScheduler:
    """``member_id`` becomes leader (a new epoch) and syncs its code into the job store."""
    epoch = int(raw.incr(keys.epoch))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(
        FencedRedisJobStore(raw, keys, LeaderTerm(epoch, float("inf"), lambda: 0.0))
    )
    scheduler.start(paused=True)
    sync_registered_jobs(scheduler, code, raw, keys, member=member_id, window_ms=WINDOW_MS)
    return scheduler


async def test_versions_leading_in_turn_keep_each_others_jobs_and_changes(
    raw: redis.Redis, aclient: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    new = await member(aclient, keys, "new:1:a", NEW)
    await member(aclient, keys, "old:1:b", OLD)

    first = leads(raw, keys, "new:1:a", NEW)
    first.pause_job("b")
    first.modify_job("b", kwargs={})  # a run-time change through the API, say
    b_state = raw.hget(keys.jobs, "b")
    first.shutdown(wait=False)

    old = leads(raw, keys, "old:1:b", OLD)
    assert old.get_job("b") is not None, "the old code deleted a job the new code defines"
    assert raw.hget(keys.jobs, "b") == b_state, "the job's state changed under the old code"
    assert str(old.get_job("a").trigger) == "interval[0:00:05]", (
        "the old code reverted a definition that live new code holds"
    )
    old.shutdown(wait=False)

    again = leads(raw, keys, "new:1:a", NEW)
    assert again.get_job("b").next_run_time is None, "b came back unpaused"
    assert raw.hget(keys.jobs, "b") == b_state
    again.shutdown(wait=False)

    await new.leave()  # the new version is gone everywhere: now the old code's view holds
    last = leads(raw, keys, "old:1:b", OLD)
    assert last.get_job("b") is None, "a job no live code defines stays forever"
    assert str(last.get_job("a").trigger) == "interval[0:00:09]"
    last.shutdown(wait=False)
