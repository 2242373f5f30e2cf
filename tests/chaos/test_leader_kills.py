"""The leader SIGKILLed five times in a row, under load: no fire time runs twice, every fire
time ends in the ledger, and each standby fires within ttl + 1 s."""

from __future__ import annotations

import signal
import time
from functools import partial

import redis

from tests.support.cluster import fired_since, leader_id, pid_of, probe_runs, runs_at_least
from tests.support.ledger_checks import (
    assert_exactly_once,
    duplicates,
    gaps,
    read_evidence,
)
from tests.support.load_jobs import LOAD_JOBS
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer

TTL = 2.0
KILLS = 5


def test_five_leader_kills_in_a_row_under_load(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "JOBS_MODULES": "tests.support.probe_jobs,tests.support.load_jobs",
    }
    for n in range(3):
        processes.scheduler(f"scheduler-{n}", **env)
    wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")

    for kill in range(1, KILLS + 1):
        runs_before = probe_runs(client, prefix)
        wait_until(runs_at_least(client, prefix, runs_before + 2), 15, "two runs by the leader")
        leader = wait_until(lambda: leader_id(client, prefix), 10, "a leader")
        assert leader is not None
        name = processes.by_pid(pid_of(leader))
        assert name is not None
        processes.signal(name, signal.SIGKILL)
        killed_at = time.time()
        started = wait_until(
            partial(fired_since, client, prefix, killed_at, leader),
            3 * TTL + 10,
            f"a run after kill {kill}",
        )
        assert started is not None
        assert started - killed_at <= TTL + 1, (
            f"kill {kill}: the standby fired {started - killed_at:.2f}s after"
        )
        processes.scheduler(f"scheduler-{2 + kill}", **env)  # keep a standby around

    time.sleep(3 * TTL + TTL + 1)  # dead runners leave the members; their claims are closed
    for name, process in processes.started.items():
        if process.poll() is None:
            assert processes.terminate(name) == 0
    time.sleep(0.5)

    assert_exactly_once(read_evidence(client, prefix), min_runs=15, allow_lost=True)
    for job_id in LOAD_JOBS:
        times = read_evidence(client, prefix, job_id).ledger_times
        assert not duplicates(times), f"{job_id}: {duplicates(times)}"
        assert not gaps(times), f"{job_id}: fire times missing from the ledger {gaps(times)}"
