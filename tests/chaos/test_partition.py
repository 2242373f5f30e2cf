"""A leader cut off from Redis longer than the ttl fences itself, a standby takes over, and
the old leader comes back as a standby. Bodies of two epochs never overlap."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.body_log import body_intervals, overlaps
from tests.support.cluster import leader_id, member_roles, pid_of, probe_runs
from tests.support.ledger_checks import assert_exactly_once, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.proxy import PartitionProxy
from tests.support.redis_server import RedisServer

TTL = 2.0


def test_a_partitioned_leader_fences_itself_and_returns_as_standby(
    private_redis: RedisServer,
    processes: Processes,
    prefix: str,
    tmp_path: Path,
) -> None:
    client = private_redis.client()
    log = tmp_path / "bodies.jsonl"
    proxies = {name: PartitionProxy(private_redis.port) for name in ("s1", "s2")}
    try:
        for name, proxy in proxies.items():
            processes.scheduler(
                name,
                REDIS_URL=proxy.url,
                OVERLAP_LOG=str(log),
                JOBS_MODULES="tests.support.probe_jobs,tests.support.overlap_jobs",
            )
        wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")
        wait_until(lambda: log.exists() and "start" in log.read_text(), 10, "a long run")
        old = leader_id(client, prefix)
        assert old is not None
        old_name = processes.by_pid(pid_of(old))
        assert old_name is not None

        proxies[old_name].partition()
        cut_at = time.monotonic()
        wait_until(
            lambda: leader_id(client, prefix) not in (None, old),
            3 * TTL + 2,
            "a standby taking over",
        )
        took_over = time.monotonic() - cut_at
        assert took_over <= TTL + 1, f"takeover {took_over:.1f}s after the cut"
        wait_until(lambda: time.monotonic() - cut_at >= 5 * TTL, 6 * TTL, "a long partition")
        proxies[old_name].heal()

        def old_is_standby() -> bool:
            return member_roles(client, prefix).get(old) == "standby"

        wait_until(old_is_standby, 5 * TTL, "the old leader back, as a standby")
        assert processes.started[old_name].poll() is None, "the old leader kept running"
        assert "stopped firing jobs" in processes.log(old_name)
        time.sleep(TTL)
        for name in proxies:
            assert processes.terminate(name) == 0
    finally:
        for proxy in proxies.values():
            proxy.close()

    intervals = body_intervals(str(log), "long")
    assert not overlaps(intervals), f"bodies of two epochs overlapped: {overlaps(intervals)}"
    assert_exactly_once(read_evidence(client, prefix), min_runs=10, allow_lost=True)
