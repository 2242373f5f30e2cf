"""Exactly once per scheduled time, across real scheduler processes and gunicorn workers."""

from __future__ import annotations

import signal
import time

import pytest
import redis

from tests.support.cluster import leader_pid, pid_of, probe_runs
from tests.support.ledger_checks import Evidence, assert_exactly_once, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._firing.record import RunRecord
from tickonce._storage.keys import Keys

pytestmark = pytest.mark.processes

TTL = 2.0


def start_leader_and_standby(
    processes: Processes, server: RedisServer, client: redis.Redis, prefix: str
) -> tuple[str, int]:
    """Two scheduler processes; once the probe has run 3 times, the leader's name and pid."""
    processes.scheduler("scheduler-1", REDIS_URL=server.url)
    processes.scheduler("scheduler-2", REDIS_URL=server.url)
    wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")
    pid = wait_until(lambda: leader_pid(client, prefix), 5, "a leader")
    assert pid is not None
    leader = processes.by_pid(pid)
    assert leader is not None, f"the lease holder {pid} is not one of the test's schedulers"
    return leader, pid


def settle_and_read(client: redis.Redis, prefix: str) -> Evidence:
    """Let recorded runs land (the probe job takes milliseconds), then read the evidence."""
    time.sleep(0.5)
    return read_evidence(client, prefix)


def test_two_schedulers_and_two_gunicorns_with_four_embedded_workers_fire_once(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    env = {"REDIS_URL": redis_server.url}
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    for n in (1, 2):
        processes.gunicorn(
            f"gunicorn-{n}", free_port(), workers=4, SCHEDULER_MODE="embedded", **env
        )
    members = Keys(prefix).members
    wait_until(lambda: client.zcard(members) >= 10, 60, "2 schedulers + 8 workers contending")
    wait_until(lambda: probe_runs(client, prefix) >= 1, 30, "the first run")
    first = time.monotonic()
    wait_until(lambda: time.monotonic() - first >= 11, 15, "11 s of firing")
    for name in list(processes.started):
        processes.terminate(name)

    evidence = settle_and_read(client, prefix)
    assert_exactly_once(evidence, min_runs=11)


def test_sigkill_of_the_leader_fails_over_within_ttl_plus_one_second_without_duplicates(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    leader, pid = start_leader_and_standby(processes, redis_server, client, prefix)

    processes.signal(leader, signal.SIGKILL)
    killed_at = time.time()

    def standby_fired() -> RunRecord | None:
        fresh = [
            e
            for e in read_evidence(client, prefix).ledger
            if e.started_at and e.started_at.timestamp() >= killed_at
        ]
        return min(fresh, key=lambda e: e.started_at or 0) if fresh else None

    first = wait_until(standby_fired, 3 * TTL + 10, "a run by the standby")
    assert first is not None and first.started_at is not None
    assert pid_of(first.runner) != pid
    assert first.started_at.timestamp() - killed_at <= TTL + 1, (
        f"the standby fired {first.started_at.timestamp() - killed_at:.2f}s after the kill"
    )
    # Long enough for the dead leader to drop out of the members, so a fire it had claimed
    # but not recorded is closed as runner_lost by the new leader.
    time.sleep(3 * TTL + TTL + 1)
    survivor = next(name for name in processes.started if name != leader)
    assert processes.terminate(survivor) == 0

    evidence = settle_and_read(client, prefix)
    assert_exactly_once(evidence, min_runs=8, allow_lost=True)
    lost = [e for e in evidence.ledger if e.status != "succeeded"]
    assert all(e.reason == "runner_lost" for e in lost), lost


def test_sigterm_of_the_leader_hands_over_within_a_second_and_loses_no_fire_time(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    leader, pid = start_leader_and_standby(processes, redis_server, client, prefix)

    processes.signal(leader, signal.SIGTERM)
    signalled = time.monotonic()
    new_pid = wait_until(
        lambda: ((p := leader_pid(client, prefix)) != pid and p) or None,
        5,
        "a standby holding the lease",
    )
    took_over = time.monotonic() - signalled
    assert took_over <= 1.0, f"the standby held the lease {took_over:.2f}s after SIGTERM"
    assert processes.started[leader].wait(timeout=15) == 0, "SIGTERM must end in exit 0"
    runs_at_handover = probe_runs(client, prefix)
    wait_until(lambda: probe_runs(client, prefix) >= runs_at_handover + 3, 10, "runs after")
    assert new_pid is not None
    survivor = processes.by_pid(new_pid)
    assert survivor is not None
    assert processes.terminate(survivor) == 0

    evidence = settle_and_read(client, prefix)
    assert_exactly_once(evidence, min_runs=6)
    assert len({e.epoch for e in evidence.ledger}) == 2, "runs from both leader terms"


def test_a_scheduler_started_before_redis_waits_and_survives_a_redis_restart(
    private_redis: RedisServer, processes: Processes, prefix: str
) -> None:
    private_redis.stop()
    processes.scheduler("scheduler", REDIS_URL=private_redis.url)
    time.sleep(2 * TTL)
    assert processes.started["scheduler"].poll() is None, "no Redis must not end the process"

    private_redis.start()
    client = private_redis.client()
    wait_until(lambda: probe_runs(client, prefix) >= 2, 20, "runs once Redis is up")

    private_redis.stop()  # crash; AOF keeps what was acknowledged
    time.sleep(1)
    private_redis.start()
    client = private_redis.client()
    before = probe_runs(client, prefix)
    wait_until(lambda: probe_runs(client, prefix) >= before + 3, 30, "runs after the restart")
    assert processes.started["scheduler"].poll() is None
    assert processes.terminate("scheduler") == 0

    evidence = settle_and_read(client, prefix)
    assert_exactly_once(evidence, min_runs=5, allow_lost=True)
