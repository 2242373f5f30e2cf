"""Lease, fencing epoch and claims against a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio as aioredis
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from tests.support.redis_server import RedisServer
from tickonce._exceptions import NotLeaderError
from tickonce._firing.commit import ClaimResult, FireCycle, FirePlan
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._firing.outcome import Status
from tickonce._firing.record import Claim, RunLedger, RunRecord
from tickonce._firing.run import refresh_slots
from tickonce._jobs.tasks import run_task
from tickonce._leadership.fencing import LeaderTerm
from tickonce._leadership.lease import Lease, read_leader
from tickonce._storage.keys import Keys

FIRE = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
TTL_MS = 2000


@pytest.fixture
async def aclient(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    connection = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    await connection.aclose()


def claim(epoch: int, at: datetime = FIRE, runner: str = "a:1") -> Claim:
    return Claim("job", at, runner, epoch, datetime.now(UTC))


def fire(
    client: redis.Redis,
    keys: Keys,
    claim: Claim,
    *,
    limit: int = 1000,
    slot: str = "t#0",
    window_ms: int = 60_000,
) -> ClaimResult:
    """Claim one run the way a leader of the claim's epoch does (through its fire cycle)."""
    verdicts: list[ClaimResult] = []
    cycle = FireCycle(
        client,
        keys,
        LeaderTerm(claim.epoch, float("inf"), lambda: 0.0),
        100,
        on_stale_epoch=lambda reason: None,
    )
    full = RunRecord(
        claim.job_id,
        claim.scheduled_at,
        Status.SKIPPED,
        claim.runner,
        claim.epoch,
        reason="max_instances (1) reached",
    )
    cycle.plan(
        FirePlan(
            job_id=claim.job_id,
            epoch=claim.epoch,
            runs=[(claim, full)],
            unrun=[],
            limit=limit,
            slot=slot,
            slot_window_ms=window_ms,
            on_done=lambda results, sent: verdicts.extend(results),
        )
    )
    try:
        cycle.flush()
    except NotLeaderError:
        return ClaimResult.STALE_EPOCH
    return verdicts[0]


def record_unrun(
    client: redis.Redis, keys: Keys, entries: list[tuple[Claim, RunRecord]], max_entries: int
) -> list[ClaimResult]:
    """Record fire times that will not run, as a leader's wakeup does; what was recorded."""
    recorded: list[RunRecord] = []
    cycle = FireCycle(
        client,
        keys,
        LeaderTerm(1, float("inf"), lambda: 0.0),
        max_entries,
        on_stale_epoch=lambda reason: None,
    )
    cycle.plan(
        FirePlan(
            job_id="job",
            epoch=1,
            runs=[],
            unrun=entries,
            limit=1,
            slot="t#0",
            slot_window_ms=60_000,
            on_done=lambda results, sent: None,
            unrun_logged=recorded.append,
        )
    )
    cycle.flush()
    return [
        ClaimResult.GRANTED if record in recorded else ClaimResult.TAKEN for _, record in entries
    ]


def claimed_fire(
    client: redis.Redis, aclient: aioredis.Redis, keys: Keys, runner: str
) -> RunLedger:
    """Claim FIRE for ``runner`` in epoch 1; the ledger that records it."""
    client.set(keys.epoch, 1)
    assert fire(client, keys, claim(1, runner=runner)) is ClaimResult.GRANTED
    return RunLedger(aclient, keys, max_entries=100)


async def test_acquisition_is_exclusive_and_each_one_raises_the_epoch(
    aclient: aioredis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    first, second = Lease(aclient, keys, "a:1", TTL_MS), Lease(aclient, keys, "b:2", TTL_MS)

    assert await first.acquire() == 1
    assert await second.acquire() is None, "a held lease must not be taken"
    view = await read_leader(aclient, keys)
    assert (view.leader, view.epoch) == ("a:1", 1)
    assert view.expires_in_ms is not None and 0 < view.expires_in_ms <= TTL_MS

    assert await first.release()
    assert await second.acquire() == 2
    assert (await read_leader(aclient, keys)).leader == "b:2"


async def test_renew_and_release_by_a_non_holder_fail(aclient: aioredis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    holder, other = Lease(aclient, keys, "a:1", TTL_MS), Lease(aclient, keys, "b:2", TTL_MS)
    await holder.acquire()

    assert not await other.renew(), "renewal without ever holding the lease must fail"
    await aclient.set(keys.lease, "someone-else#token", px=TTL_MS)  # lease taken over
    assert not await holder.renew(), "renewal with a stale token must fail"
    assert not await holder.release(), "release with a stale token must not delete the lease"
    assert await aclient.get(keys.lease) == "someone-else#token"


def test_claims_refuse_a_stale_epoch_and_a_second_claim_of_the_same_fire(
    client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    client.set(keys.epoch, 2)

    assert fire(client, keys, claim(epoch=1)) is ClaimResult.STALE_EPOCH
    assert not client.hexists(keys.decided, "job"), (
        "a stale epoch's claim must not decide the fire time"
    )
    assert fire(client, keys, claim(epoch=2)) is ClaimResult.GRANTED
    assert fire(client, keys, claim(epoch=2, runner="b:2")) is ClaimResult.TAKEN
    later = FIRE + timedelta(seconds=1)
    assert fire(client, keys, claim(epoch=2, at=later)) is ClaimResult.GRANTED
    assert fire(client, keys, claim(epoch=2)) is ClaimResult.TAKEN, (
        "a fire time before the newest decided one is never decided again"
    )

    counters = client.hgetall(keys.counters)
    assert counters == {"claims_refused_stale_epoch": "1", "claims_refused_taken": "2"}
    assert client.hlen(keys.inflight) == 2, "granted claims are inflight until recorded"


async def test_a_claimed_fire_is_recorded_once(
    aclient: aioredis.Redis, client: redis.Redis, prefix: str
) -> None:
    ledger = claimed_fire(client, aclient, Keys(prefix), runner="a:1")
    record = RunRecord("job", FIRE, Status.SUCCEEDED, "a:1", 1, duration_ms=1.0)

    assert await ledger.finish(record)
    lost = await ledger.record_lost(lambda _: True)
    assert not await ledger.finish(record), "the same fire must not be recorded twice"
    assert lost == 0
    assert [r.status for r in await ledger.recent("job", 10)] == ["succeeded"]


async def test_a_dead_runners_claim_is_recorded_as_lost(
    aclient: aioredis.Redis, client: redis.Redis, prefix: str
) -> None:
    ledger = claimed_fire(client, aclient, Keys(prefix), runner="dead:1")

    assert await ledger.record_lost(lambda c: c.runner == "dead:1") == 1
    late = RunRecord("job", FIRE, Status.SUCCEEDED, "dead:1", 1)
    assert not await ledger.finish(late), (
        "a runner finishing after being recorded lost adds nothing"
    )
    [entry] = await ledger.recent("job", 10)
    assert (entry.status, entry.reason) == ("failed", "runner_lost")


def test_the_ledger_is_capped(client: redis.Redis, prefix: str) -> None:
    keys = Keys(prefix)
    client.set(keys.epoch, 1)
    unrun = []
    for n in range(8):
        at = FIRE + timedelta(seconds=n)
        unrun.append(
            (claim(1, at=at), RunRecord("job", at, Status.SKIPPED, "a:1", 1, reason="coalesced"))
        )
    assert record_unrun(client, keys, unrun, max_entries=5) == [ClaimResult.GRANTED] * 8
    assert client.xlen(keys.ledger("job")) == 5


def test_job_store_writes_with_a_stale_epoch_are_refused(
    redis_server: RedisServer, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    client.set(keys.epoch, 3)
    raw = redis.Redis.from_url(redis_server.url)  # bytes replies, as the job store uses
    clock = iter(range(10**6)).__next__
    current = FencedRedisJobStore(raw, keys, LeaderTerm(3, float("inf"), lambda: 0.0))
    stale = FencedRedisJobStore(raw, keys, LeaderTerm(2, float("inf"), lambda: 0.0))
    expired = FencedRedisJobStore(raw, keys, LeaderTerm(3, 5.0, lambda: float(clock() + 10)))
    scheduler = BackgroundScheduler(timezone=UTC)
    for store in (current, stale, expired):
        store._scheduler, store._alias = scheduler, "default"
    job = Job(
        scheduler,
        id="job",
        func=run_task,
        args=["job"],
        kwargs={},
        trigger=IntervalTrigger(seconds=1, timezone=UTC),
        executor="default",
        name="job",
        misfire_grace_time=1,
        coalesce=True,
        max_instances=1,
        next_run_time=FIRE,
    )

    current.add_job(job)
    job._modify(next_run_time=FIRE + timedelta(seconds=1))
    with pytest.raises(NotLeaderError):
        stale.update_job(job)
    with pytest.raises(NotLeaderError):
        expired.update_job(job)
    assert current.lookup_job("job").next_run_time == FIRE, "refused writes must not land"
    current.update_job(job)
    assert current.lookup_job("job").next_run_time == FIRE + timedelta(seconds=1)


async def test_max_instances_is_counted_across_the_cluster(
    aclient: aioredis.Redis, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    client.set(keys.epoch, 1)
    ledger = RunLedger(aclient, keys, max_entries=100)
    first, second, third = (claim(1, at=FIRE + timedelta(seconds=n)) for n in range(3))

    assert fire(client, keys, first, limit=1, slot="a:1#x") is ClaimResult.GRANTED
    assert fire(client, keys, second, limit=1, slot="b:2#y") is ClaimResult.FULL, (
        "a second runner may not start while the first run holds the only slot"
    )
    [refused] = await ledger.recent("job", 10)
    assert (refused.status, refused.reason) == ("skipped", "max_instances (1) reached"), (
        "a refused fire is recorded as skipped, in the same step"
    )
    record = RunRecord("job", first.scheduled_at, Status.SUCCEEDED, "a:1", 1)
    assert await ledger.finish(record, release_slot="a:1#x")
    assert fire(client, keys, third, limit=1, slot="b:2#z") is ClaimResult.GRANTED

    kept = [("job", "b:2#z"), ("job", "gone#0")]
    assert await refresh_slots(aclient, keys, kept, 60_000) == {"gone#0"}
    expiring = claim(1, at=FIRE + timedelta(seconds=9))
    client.delete(keys.running("job"))
    assert fire(client, keys, expiring, limit=1, slot="c:3#w", window_ms=50) is ClaimResult.GRANTED
    later = claim(1, at=FIRE + timedelta(seconds=10))
    await asyncio.sleep(0.1)  # not refreshed: the slot expires, its runner presumed gone
    assert fire(client, keys, later, limit=1, slot="d:4#v") is ClaimResult.GRANTED


async def test_runs_ending_together_are_each_recorded_once(
    aclient: aioredis.Redis, client: redis.Redis, prefix: str
) -> None:
    """Ends recorded in one batch: every caller learns whether its own record was the one
    written (the runner's and the lost-run sweep's race for the same fire)."""
    keys = Keys(prefix)
    client.set(keys.epoch, 1)
    ledger = RunLedger(aclient, keys, max_entries=1000)
    times = [FIRE + timedelta(seconds=n) for n in range(200)]
    for at in times:
        assert fire(client, keys, claim(1, at=at), limit=1000) is ClaimResult.GRANTED

    def record(at: datetime, runner: str) -> RunRecord:
        return RunRecord("job", at, Status.SUCCEEDED, runner, 1)

    written = await asyncio.gather(
        *(ledger.finish(record(at, runner)) for at in times for runner in ("a:1", "sweep"))
    )
    assert written == [True, False] * len(times), "the first of each pair writes, only it"
    entries = await ledger.recent("job", 1000)
    assert sorted(e.scheduled_at for e in entries) == times
    assert {e.runner for e in entries} == {"a:1"}


async def test_claims_and_records_land_after_redis_forgot_its_scripts(
    aclient: aioredis.Redis, client: redis.Redis, prefix: str
) -> None:
    """Pipelined Lua calls go by digest without asking first whether the scripts are loaded; a
    restarted Redis has none, and they are loaded and the pipeline sent again."""
    keys = Keys(prefix)
    client.set(keys.epoch, 1)
    ledger = RunLedger(aclient, keys, max_entries=100)
    first, second = claim(1, at=FIRE), claim(1, at=FIRE + timedelta(seconds=1))
    client.script_flush()
    assert fire(client, keys, first) is ClaimResult.GRANTED
    assert fire(client, keys, second) is ClaimResult.GRANTED
    client.script_flush()
    ends = [RunRecord("job", c.scheduled_at, Status.SUCCEEDED, "a:1", 1) for c in (first, second)]
    assert await asyncio.gather(*(ledger.finish(end) for end in ends)) == [True, True]
    assert [e.status for e in await ledger.recent("job", 10)] == ["succeeded", "succeeded"]


async def test_the_asyncio_client_packs_with_hiredis_and_keeps_redis_pys_answers(
    redis_server: RedisServer, prefix: str
) -> None:
    """The scheduler's asyncio clients pack commands in C: every value arrives as redis-py
    would send it (text, floats, binary, pipelined Lua), and a value Redis cannot take is
    refused with redis-py's own error before anything is sent."""
    from tickonce._config.settings import Settings
    from tickonce._storage.clients import async_redis

    client = async_redis(Settings(redis_url=redis_server.url))
    binary = async_redis(Settings(redis_url=redis_server.url), decode=False)
    try:
        await client.hset(f"{prefix}h", mapping={"é ü": "ünïcode", "f": 0.1, "i": 10**20})
        assert await client.hgetall(f"{prefix}h") == {
            "é ü": "ünïcode",
            "f": "0.1",
            "i": str(10**20),
        }
        assert await client.hincrbyfloat(f"{prefix}h", "f", 0.25) == pytest.approx(0.35)
        await binary.set(f"{prefix}b", bytes(range(256)))
        assert await binary.get(f"{prefix}b") == bytes(range(256))
        async with client.pipeline(transaction=False) as pipe:
            pipe.eval("return ARGV[1] .. ARGV[2]", 0, "a b", 3)
            pipe.execute_command("CONFIG GET", "maxmemory")
            assert await pipe.execute() == ["a b3", {"maxmemory": "0"}]
        with pytest.raises(redis.DataError):
            await client.set(f"{prefix}none", None)  # type: ignore[arg-type]
        assert await client.exists(f"{prefix}none") == 0
    finally:
        await client.aclose()
        await binary.aclose()
