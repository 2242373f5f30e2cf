"""Two schedulers share four shards; the one SIGKILLed has its shards taken over by the other
within ttl + 1 s, a replacement gets its even share back, and no fire time of any job runs
twice or goes missing from the ledger."""

from __future__ import annotations

import json
import signal
import time

import redis

from tests.support.cluster import pid_of
from tests.support.ledger_checks import assert_exactly_once, duplicates, gaps, read_evidence
from tests.support.load_jobs import LOAD_JOBS
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._storage.keys import Keys, shard_of

TTL = 2.0
SHARDS = 4


def led_shards(client: redis.Redis, keys: Keys) -> dict[str, set[int]]:
    """Each live contender's led shards, as it last announced them."""
    infos = client.hgetall(keys.member_info)
    return {
        str(member): {int(shard) for shard in json.loads(info).get("shards", {})}
        for member, info in infos.items()
    }


def shard_leaders(client: redis.Redis, keys: Keys) -> dict[int, str | None]:
    """Each shard's lease holder, from the leases themselves."""
    tokens = [client.get(shard.lease) for shard in keys.every_shard()]
    return {n: str(token).split("#")[0] if token else None for n, token in enumerate(tokens)}


def balanced(client: redis.Redis, keys: Keys, members: int) -> dict[int, str] | None:
    """Each shard's leader, once every shard is led and ``members`` processes lead them evenly."""
    leaders = shard_leaders(client, keys)
    if None in leaders.values():
        return None
    counts = [list(leaders.values()).count(member) for member in set(leaders.values())]
    if len(counts) != members or max(counts) - min(counts) > 1:
        return None
    return {shard: str(leader) for shard, leader in leaders.items()}


def first_run_after(
    client: redis.Redis, keys: Keys, job_ids: list[str], moment: float, not_by: str
) -> float | None:
    """When the first of ``job_ids`` started after ``moment`` by a runner other than ``not_by``."""
    starts = [
        entry.started_at.timestamp()
        for job_id in job_ids
        for entry in read_evidence(client, keys.prefix, job_id, keys=keys).ledger
        if entry.started_at and entry.started_at.timestamp() >= moment and entry.runner != not_by
    ]
    return min(starts) if starts else None


def test_a_killed_schedulers_shards_are_taken_over_and_given_back(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    keys = Keys(prefix, SHARDS, 0, tagged=True)
    env = {
        "REDIS_URL": redis_server.url,
        "SCHEDULER_SHARDS": str(SHARDS),
        "JOBS_MODULES": "tests.support.probe_jobs,tests.support.load_jobs",
    }
    jobs_of = {n: [j for j in LOAD_JOBS if shard_of(j, SHARDS) == n] for n in range(SHARDS)}
    assert all(jobs_of.values()), "every shard has load jobs"
    processes.scheduler("scheduler-0", **env)
    processes.scheduler("scheduler-1", **env)
    leaders = wait_until(lambda: balanced(client, keys, 2), 30, "two schedulers, two shards each")
    assert leaders is not None

    victim = leaders[0]
    victim_shards = [shard for shard, leader in leaders.items() if leader == victim]
    victim_name = processes.by_pid(pid_of(victim))
    assert victim_name is not None
    time.sleep(2)  # some runs under the first leaders
    processes.signal(victim_name, signal.SIGKILL)
    killed_at = time.time()
    for shard in victim_shards:
        started = wait_until(
            lambda shard=shard: first_run_after(client, keys, jobs_of[shard], killed_at, victim),  # type: ignore[misc]
            3 * TTL + 10,
            f"a run of shard {shard}'s jobs after the kill",
        )
        assert started is not None
        assert started - killed_at <= TTL + 1, (
            f"shard {shard} was taken over {started - killed_at:.2f}s after the kill"
        )
    survivors = set(shard_leaders(client, keys).values())
    assert len(survivors) == 1 and victim not in survivors, "the survivor leads every shard"

    processes.scheduler("scheduler-2", **env)
    wait_until(lambda: balanced(client, keys, 2), 30, "the replacement to get two shards")
    wait_until(
        lambda: sorted(len(led) for led in led_shards(client, keys).values() if led) == [2, 2],
        10,
        "the two live members to announce two shards each",
    )

    time.sleep(3 * TTL + TTL + 1)  # the killed runner leaves the members; its claims are closed
    for name, process in processes.started.items():
        if process.poll() is None:
            assert processes.terminate(name) == 0, processes.log(name)[-3000:]
    assert_exactly_once(read_evidence(client, prefix, keys=keys), min_runs=15, allow_lost=True)
    for job_id in LOAD_JOBS:
        times = read_evidence(client, prefix, job_id, keys=keys).ledger_times
        assert len(times) >= 15, f"{job_id}: only {len(times)} fire times"
        assert not duplicates(times), f"{job_id}: {duplicates(times)}"
        assert not gaps(times), f"{job_id}: fire times missing from the ledger {gaps(times)}"
