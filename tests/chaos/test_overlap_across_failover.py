"""max_instances holds across the cluster, also while a previous leader's run still goes on."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import redis

from tests.support.body_log import body_intervals, overlaps
from tests.support.cluster import leader_id, pid_of
from tests.support.ledger_checks import duplicates, gaps, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer


def test_a_handover_during_a_long_run_never_runs_two_at_once(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    tmp_path: Path,
) -> None:
    log = tmp_path / "bodies.jsonl"
    env = {
        "REDIS_URL": redis_server.url,
        "JOBS_MODULES": "tests.support.overlap_jobs",
        "OVERLAP_LOG": str(log),
        "SHUTDOWN_GRACE_SECONDS": "10",
    }
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    wait_until(lambda: log.exists() and "start" in log.read_text(), 20, "a long run started")
    old = leader_id(client, prefix)
    assert old is not None
    old_name = processes.by_pid(pid_of(old))
    assert old_name is not None

    processes.signal(old_name, signal.SIGTERM)  # hands over at once, drains its run
    wait_until(lambda: leader_id(client, prefix) not in (None, old), 5, "the new leader")
    assert processes.started[old_name].wait(timeout=20) == 0
    new = leader_id(client, prefix)
    assert new is not None
    wait_until(lambda: f'"runner": "{new}"' in log.read_text(), 15, "a run by the new leader")
    new_name = processes.by_pid(pid_of(new))
    assert new_name is not None and processes.terminate(new_name) == 0

    intervals = body_intervals(str(log), "long")
    assert not overlaps(intervals), f"two bodies ran at once: {overlaps(intervals)}"
    assert len({epoch for *_, epoch in intervals}) == 2, "runs from both leaders"
    ledger = read_evidence(client, prefix, "long").ledger
    times = read_evidence(client, prefix, "long").ledger_times
    assert not duplicates(times) and not gaps(times)
    outcomes = Counter(f"{e.status}:{e.reason}" for e in ledger)
    assert outcomes["skipped:max_instances (1) reached"] >= 2, outcomes
