"""Two code versions leading in turn (a rolling deploy, a rollback) never destroy each other's
state: a job one version does not define is kept while a live member's code defines it, its
paused state and run-time changes intact; a definition another live version holds as it
stands is not reverted; only when no live member defines a job is it removed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import pytest
import redis
import redis.asyncio as aioredis
from apscheduler.schedulers.background import BackgroundScheduler

from tests.support.cluster import leader_id, member_roles, pid_of
from tests.support.ledger_checks import read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._control.channel import CommandSender
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._jobs.registry import Registry
from tickonce._jobs.sync import sync_registered_jobs
from tickonce._leadership.fencing import LeaderTerm
from tickonce._leadership.membership import Membership
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

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


async def member(aclient: aioredis.Redis, keys: Keys, runner_id: str, code: Registry) -> Membership:
    """A live contender running ``code``, as every contender announces itself."""
    membership = Membership(aclient, keys, runner_id, "scheduler", WINDOW_MS)
    await membership.publish_jobs({spec.id: spec.fingerprint for spec in code.specs()})
    await membership.beat("standby", {})
    return membership


def leads(raw: redis.Redis, keys: Keys, runner_id: str, code: Registry) -> BackgroundScheduler:
    """``runner_id`` becomes leader (a new epoch) and syncs its code into the job store."""
    epoch = int(raw.incr(keys.epoch))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_jobstore(
        FencedRedisJobStore(raw, keys, LeaderTerm(epoch, float("inf"), lambda: 0.0))
    )
    scheduler.start(paused=True)
    sync_registered_jobs(scheduler, code, raw, keys, runner_id=runner_id, window_ms=WINDOW_MS)
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


NEW_CODE = "tests.support.probe_jobs,tests.support.control_jobs"  # defines greet
OLD_CODE = "tests.support.probe_jobs"  # does not


def test_old_and_new_scheduler_processes_leading_in_turn_keep_a_paused_job(
    redis_server: RedisServer,
    client: redis.Redis,
    raw: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    keys = Keys(prefix)
    env = {"REDIS_URL": redis_server.url}
    processes.scheduler("new-1", JOBS_MODULES=NEW_CODE, **env)
    wait_until(lambda: raw.hexists(keys.jobs, "greet"), 30, "the new code's job")
    sender = CommandSender(aioredis.Redis.from_url(redis_server.url, decode_responses=True), keys)
    paused = asyncio.run(sender.send("pause", "greet", timeout=10))
    assert paused.code == 200 and paused.job is not None and paused.job["paused"]
    greet_state = raw.hget(keys.jobs, "greet")

    processes.scheduler("old", JOBS_MODULES=OLD_CODE, **env)
    processes.scheduler("new-2", JOBS_MODULES=NEW_CODE, **env)
    wait_until(lambda: len(member_roles(client, prefix)) == 3, 15, "three members")
    # The old code must win the hand-over: hold the other new-code process still meanwhile.
    processes.signal("new-2", signal.SIGSTOP)
    try:
        assert processes.terminate("new-1") == 0
        old_pid = processes.started["old"].pid
        old_id = next(m for m in member_roles(client, prefix) if pid_of(m) == old_pid)
        wait_until(lambda: leader_id(client, prefix) == old_id, 15, "the old code leading")
    finally:
        processes.signal("new-2", signal.SIGCONT)
    # Its start-up sync came before its first fire; 8 fires later a periodic sync (every
    # 3 ttl = 6 s) has run too.
    wait_until(lambda: probe_runs_by(client, prefix, old_id) >= 8, 20, "the old code leading on")
    assert raw.hget(keys.jobs, "greet") == greet_state, "the old code changed or lost greet"
    assert "greet" in {text(k) for k in client.hkeys(keys.definitions)}

    assert processes.terminate("old") == 0
    wait_until(lambda: leader_id(client, prefix) not in (None, old_id), 15, "new code leading")
    new_id = leader_id(client, prefix)
    assert new_id is not None
    wait_until(lambda: probe_runs_by(client, prefix, new_id) >= 2, 15, "the new code firing")
    assert raw.hget(keys.jobs, "greet") == greet_state, "greet did not survive the deploy"
    assert processes.terminate("new-2") == 0


def probe_runs_by(client: redis.Redis, prefix: str, runner: str) -> int:
    return sum(e.runner == runner for e in read_evidence(client, prefix).ledger)
