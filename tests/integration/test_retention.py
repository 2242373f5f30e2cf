"""Redis does not grow without bound: what a job leaves behind goes when the job goes (its
ledger after a retention time), and the command group forgets consumers that are gone."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis
import redis.asyncio as aioredis
from fastapi.testclient import TestClient
from pydantic import ValidationError

from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings
from tickonce._control.channel import CommandConsumer, Outcome
from tickonce._firing.record import Claim, RunLedger, RunRecord
from tickonce._jobs.retention import JobRetention, forget_job
from tickonce._leadership.membership import Membership
from tickonce._storage import clients
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOBS = ["tests.support.control_jobs"]
WEEK = 7 * 24 * 3600
TWO_HOURS = 2 * 3600


def start_leader(settings: Settings) -> TestClient:
    """The API in embedded mode as a new process would start: a contender id of its own (a
    new nonce), leading once the jobs are synced. Leave it with ``__exit__``."""
    clients._RUNNER_IDS.clear()
    http = TestClient(create_app(settings)).__enter__()
    try:
        wait_until(lambda: http.get("/scheduler").json()["leader"] is not None, 15, "a leader")
        wait_until(lambda: http.get("/jobs/greet").status_code == 200, 10, "jobs synced")
    except BaseException:
        http.__exit__(None, None, None)
        raise
    return http


@pytest.fixture
def settings(redis_server: RedisServer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    leader = start_leader(settings)
    try:
        yield leader
    finally:
        leader.__exit__(None, None, None)


def remnants(client: redis.Redis, keys: Keys, job_id: str) -> dict[str, str]:
    """Every key, hash field and sorted-set member under the prefix that names ``job_id``
    (a name unique to the test), each with what it is. Values are not searched: commands,
    their outcomes and the test task's own writes quote job ids, and are not the job's."""
    found: dict[str, str] = {}
    for key in cast(Iterator[str], client.scan_iter(match=f"{keys.prefix}*", count=1000)):
        kind = cast(str, client.type(key))
        if job_id in key:
            found[key] = kind
        if kind == "hash":  # field names only: the job store's values are pickles
            for field in cast(list[str], client.hkeys(key)):
                if job_id in field:
                    found[f"{key} field {field}"] = "hash field"
        elif kind == "zset":
            for member in cast(list[str], client.zrange(key, 0, -1)):
                if job_id in member:
                    found[f"{key} member {member}"] = "zset member"
    return found


def inflight_of(client: redis.Redis, keys: Keys, job_id: str) -> list[str]:
    fires = cast(list[str], client.hkeys(keys.inflight))
    return [fire for fire in fires if fire.startswith(f"{job_id}@")]


def test_a_deleted_job_leaves_nothing_but_its_history_which_expires(
    http: TestClient, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    job_id = f"gone-{uuid.uuid4().hex[:8]}"
    body = {"id": job_id, "task": "greet", "trigger": {"type": "interval", "seconds": 1}}
    assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
    assert http.post(f"/jobs/{job_id}/run", headers=AUTH).status_code == 200
    wait_until(
        lambda: len(http.get(f"/jobs/{job_id}/runs").json()) >= 4, 20, "a few runs of the job"
    )
    before = remnants(client, keys, job_id)
    assert f"{keys.decided} field {job_id}" in before, before
    assert f"{keys.counters} field runs|{job_id}|succeeded" in before, before
    # Its last run over (recorded), so nothing of it is still going when it is deleted.
    assert http.post(f"/jobs/{job_id}/pause", headers=AUTH).status_code == 200
    wait_until(lambda: not inflight_of(client, keys, job_id), 10, "its last run recorded")

    assert http.delete(f"/jobs/{job_id}", headers=AUTH).status_code == 204

    left = remnants(client, keys, job_id)
    manual = {key for key in left if key.startswith(keys.manual_claim(job_id, ""))}
    assert {key: kind for key, kind in left.items() if key not in manual} == {
        keys.ledger(job_id): "stream"
    }, "only the ledger stays"
    assert 0 < client.ttl(keys.ledger(job_id)) <= WEEK, "the ledger goes after DELETED_JOB_HIST..."
    assert all(0 < client.ttl(key) <= TWO_HOURS for key in manual), "run-now claims expire"
    history = http.get(f"/jobs/{job_id}/runs?limit=100").json()
    assert len(history) >= 4 and any(run["manual"] for run in history), "history is readable"


def test_the_command_group_forgets_consumers_of_contenders_that_are_gone(
    settings: Settings, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)

    def consumers() -> set[str]:
        found: list[dict[str, Any]] = client.xinfo_consumers(keys.commands, keys.command_group)
        return {consumer["name"] for consumer in found}

    leaders: list[str] = []
    for _ in range(4):
        http = start_leader(settings)
        try:
            leader = cast(str, http.get("/scheduler").json()["leader"])
            assert leader not in leaders, "each start is a contender of its own"
            leaders.append(leader)
            # A change goes through the leader's consumer.
            assert http.post("/jobs/greet/pause", headers=AUTH).status_code == 200
            assert leader in consumers()
            wait_until(lambda: consumers() == {leader}, 10, f"only {leader} in the group")  # noqa: B023
        finally:
            http.__exit__(None, None, None)
    assert client.xpending(keys.commands, keys.command_group)["pending"] == 0


def test_a_job_created_again_under_a_deleted_id_starts_clean(
    http: TestClient, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    job_id = f"again-{uuid.uuid4().hex[:8]}"
    body = {"id": job_id, "task": "greet", "trigger": {"type": "interval", "seconds": 1}}
    assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
    wait_until(lambda: len(http.get(f"/jobs/{job_id}/runs").json()) >= 2, 20, "two runs")
    http.post(f"/jobs/{job_id}/pause", headers=AUTH)
    wait_until(lambda: not inflight_of(client, keys, job_id), 10, "its last run recorded")
    old_runs = len(http.get(f"/jobs/{job_id}/runs?limit=1000").json())
    assert http.delete(f"/jobs/{job_id}", headers=AUTH).status_code == 204

    again = {**body, "start_paused": True}
    assert http.post("/jobs", json=again, headers=AUTH).status_code == 201
    left = remnants(client, keys, job_id)
    assert set(left) == {keys.ledger(job_id), f"{keys.jobs} field {job_id}"}, "nothing old"
    assert http.post(f"/jobs/{job_id}/resume", headers=AUTH).status_code == 200
    wait_until(
        lambda: len(http.get(f"/jobs/{job_id}/runs?limit=1000").json()) >= old_runs + 2,
        20,
        "two runs of the new job",
    )
    http.post(f"/jobs/{job_id}/pause", headers=AUTH)
    wait_until(lambda: not inflight_of(client, keys, job_id), 10, "its last run recorded")
    new_runs = len(http.get(f"/jobs/{job_id}/runs?limit=1000").json()) - old_runs
    counts = cast(dict[str, str], client.hgetall(keys.counters))
    counted = sum(float(n) for name, n in counts.items() if name.startswith(f"runs|{job_id}|"))
    assert counted == new_runs, "the new job's counts start from zero"


def test_a_job_created_again_keeps_its_ledger_for_good(
    http: TestClient, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    job_id = f"again-{uuid.uuid4().hex[:8]}"
    body = {"id": job_id, "task": "greet", "trigger": {"type": "interval", "hours": 1}}
    assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
    http.post(f"/jobs/{job_id}/run", headers=AUTH)
    wait_until(lambda: http.get(f"/jobs/{job_id}/runs").json(), 10, "the run-now")
    assert http.delete(f"/jobs/{job_id}", headers=AUTH).status_code == 204
    assert client.ttl(keys.ledger(job_id)) > 0
    assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
    assert client.ttl(keys.ledger(job_id)) == -1, "the new job's ledger must not expire"


def names_in(client: redis.Redis, key: str) -> list[str]:
    return [text(name) for name in client.hkeys(key)]


def claim_of(job_id: str, at: datetime, command: str = "") -> Claim:
    return Claim(job_id, at, "gone-runner:1:00", 1, at, manual=command)


def record_of(claim: Claim, status: str = "succeeded") -> RunRecord:
    return RunRecord(
        job_id=claim.job_id,
        scheduled_at=claim.scheduled_at,
        status=status,  # type: ignore[arg-type]
        runner=claim.runner,
        epoch=claim.epoch,
        started_at=claim.scheduled_at + timedelta(milliseconds=3),
        finished_at=claim.scheduled_at + timedelta(milliseconds=40),
        duration_ms=37.0,
        manual=claim.manual,
    )


async def test_forgetting_keeps_what_runs_still_going_need_and_the_sweep_takes_the_rest(
    redis_server: RedisServer, prefix: str
) -> None:
    """A job deleted while it runs: the run's claim and live slot stay (it is recorded when
    it ends), and what it counts then is forgotten by the leader's sweep."""
    keys = Keys(prefix)
    sync = redis.Redis.from_url(redis_server.url)  # bytes, like the scheduler's client
    async_client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
    ledger = RunLedger(async_client, keys, max_entries=1000)
    try:
        job, live_job, one_off = "deleted-while-running", "still-scheduled", "fired-once"
        now = datetime.now(UTC).replace(microsecond=0)
        # Both other jobs have counts and marks that must survive every sweep.
        sync.hset(keys.jobs, live_job, b"pickled job")
        sync.hset(keys.definitions, one_off, "fingerprint")
        for other in (live_job, one_off):
            sync.hset(keys.decided, other, "1 plan 1")
            claim = claim_of(other, now)
            sync.hset(keys.inflight, claim.fire_id, claim.to_json())
            assert await ledger.finish(record_of(claim))
        # The deleted job: runs recorded, one claim already recorded (left over), one going.
        done = claim_of(job, now - timedelta(seconds=2))
        sync.hset(keys.inflight, done.fire_id, done.to_json())
        assert await ledger.finish(record_of(done))
        lingering = claim_of(job, now - timedelta(seconds=1), command="c0ffee")
        entry: dict[Any, Any] = {**record_of(lingering).fields()}
        await async_client.xadd(keys.ledger(job), entry)
        going = claim_of(job, now)
        sync.hset(keys.inflight, lingering.fire_id, lingering.to_json())
        sync.hset(keys.inflight, going.fire_id, going.to_json())
        sync.hset(keys.decided, job, f"{int(now.timestamp() * 1000)} plan 1")
        server_ms = int(cast(float, sync.time()[0])) * 1000
        sync.zadd(keys.running(job), {"dead#1": server_ms - 1000, "alive#1": server_ms + 60_000})

        forgotten = forget_job(sync, keys, job, history_seconds=3600)

        assert forgotten is not None
        assert (forgotten.decided, forgotten.claims_dropped, forgotten.claims_kept) == (True, 1, 1)
        assert forgotten.counters >= 3 and forgotten.slots_kept == 1
        assert 0 < forgotten.history_ms <= 3600_000
        assert not [f for f in names_in(sync, keys.counters) if f"|{job}" in f]
        assert going.fire_id in names_in(sync, keys.inflight)
        assert lingering.fire_id not in names_in(sync, keys.inflight)
        assert sync.zrange(keys.running(job), 0, -1) == [b"alive#1"]
        assert forget_job(sync, keys, live_job, 3600) is None, "a scheduled job is kept"
        assert forget_job(sync, keys, one_off, 3600) is None, "a job defined in code is kept"

        # The run that was going ends: recorded, counted, its slot given back.
        assert await ledger.finish(record_of(going), release_slot="alive#1")
        assert not sync.exists(keys.running(job))
        assert sync.hget(keys.counters, f"runs|{job}|succeeded") == b"1"
        ttl_before = sync.pttl(keys.ledger(job))
        # And a job deleted before forgetting existed: counts, a mark, a ledger for good.
        older = claim_of("deleted-long-ago", now - timedelta(days=30))
        sync.hset(keys.inflight, older.fire_id, older.to_json())
        assert await ledger.finish(record_of(older, "failed"))
        sync.hset(keys.decided, older.job_id, "1 plan 1")
        swept = JobRetention(sync, keys, 3600).sweep()
        assert sorted(item.job_id for item in swept) == [older.job_id, job]
        assert 0 < sync.pttl(keys.ledger(older.job_id)) <= 3600_000
        assert sync.hget(keys.decided, older.job_id) is None
        counted = {f.split("|")[1] for f in names_in(sync, keys.counters) if "|" in f}
        assert counted == {live_job, one_off}, "only jobs that are there keep counts"
        assert not [f for f in names_in(sync, keys.inflight) if f.startswith(job)]
        assert 0 < sync.pttl(keys.ledger(job)) <= ttl_before, "the history time is not lengthened"
        assert sync.xlen(keys.ledger(job)) == 3, "the ledger keeps every entry until it expires"
        for other in (live_job, one_off):
            assert sync.hget(keys.decided, other) == b"1 plan 1"
            assert sync.hget(keys.counters, f"runs|{other}|succeeded") == b"1"
            assert sync.pttl(keys.ledger(other)) == -1
        assert JobRetention(sync, keys, 3600).sweep() == [], "nothing left to forget"
    finally:
        sync.close()
        await async_client.aclose()


def test_history_zero_deletes_the_ledger_with_the_job(
    redis_server: RedisServer, prefix: str
) -> None:
    keys = Keys(prefix)
    sync = redis.Redis.from_url(redis_server.url)
    try:
        job = "short-lived"
        sync.xadd(keys.ledger(job), {"job_id": job, "scheduled_at": "x", "status": "succeeded"})
        sync.hset(keys.counters, mapping={f"runs|{job}|succeeded": 1, f"runs|{job}x|failed": 1})
        forgotten = forget_job(sync, keys, job, history_seconds=0)
        assert forgotten is not None and forgotten.history_ms == -2
        assert not sync.exists(keys.ledger(job))
        assert sync.hkeys(keys.counters) == [f"runs|{job}x|failed".encode()], "only its fields"
    finally:
        sync.close()


def test_the_history_setting() -> None:
    assert Settings().deleted_job_history_seconds == 7 * 24 * 3600
    assert Settings(deleted_job_history_seconds=0).deleted_job_history_seconds == 0
    with pytest.raises(ValidationError):
        Settings(deleted_job_history_seconds=-1)


async def test_the_leader_deletes_consumers_that_are_gone_unless_they_hold_entries(
    redis_server: RedisServer, prefix: str
) -> None:
    keys = Keys(prefix)
    client = aioredis.Redis.from_url(redis_server.url, decode_responses=True)

    def answer(command: Any) -> Outcome:
        return Outcome(status="done")

    consumer = CommandConsumer(client, keys, "leader:1", answer, block_ms=100, prune_seconds=0.5)

    async def names() -> set[str]:
        found = await client.xinfo_consumers(keys.commands, keys.command_group)
        return {item["name"] for item in found}

    try:
        await client.xgroup_create(keys.commands, keys.command_group, id="$", mkstream=True)
        await Membership(client, keys, "standby:1", "scheduler", 10_000).beat("standby", {})
        for name in ("gone:1", "standby:1"):
            await client.xgroup_createconsumer(keys.commands, keys.command_group, name)
        # A consumer that is gone but holds an entry it never acknowledged.
        await client.xadd(keys.commands, {"command": json.dumps({"not": "read"})})
        await client.xreadgroup(keys.command_group, "gone:2", {keys.commands: ">"})

        assert await consumer.prune_consumers() == ["gone:1"]
        assert await names() == {"standby:1", "gone:2"}

        # Serving: the stranded entry is claimed first, then its consumer is deleted; one that
        # appears later goes at a later pass.
        serving = asyncio.create_task(consumer.run())
        for _ in range(200):  # 10 s at most
            if await names() == {"standby:1", "leader:1"}:
                break
            await asyncio.sleep(0.05)
        assert await names() == {"standby:1", "leader:1"}
        await client.xgroup_createconsumer(keys.commands, keys.command_group, "gone:3")
        for _ in range(200):
            if "gone:3" not in await names():
                break
            await asyncio.sleep(0.05)
        assert await names() == {"standby:1", "leader:1"}
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        await client.aclose()
