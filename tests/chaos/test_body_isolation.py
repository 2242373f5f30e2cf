"""Job bodies cannot hurt the leader, and the leader can always stop them:
- a ``def`` body holding the GIL for seconds neither deposes the leader nor stalls the API of
  an embedded worker;
- a ``def`` body whose leader is cut off from Redis is stopped before its running slot can
  expire, so the next leader never runs a second instance of a ``max_instances=1`` job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from tests.support.body_log import body_intervals, overlaps
from tests.support.cluster import leader_id, member_roles, pid_of, probe_runs, runs_at_least
from tests.support.ledger_checks import assert_exactly_once, read_evidence
from tests.support.processes import Processes, answers, wait_until
from tests.support.proxy import PartitionProxy
from tests.support.redis_server import RedisServer, free_port
from tickonce._firing.record import RunRecord
from tickonce._storage.keys import Keys

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

TTL = 2.0
HOG_SECONDS = 2.5 * TTL  # longer than a whole lease term


def calibrate(seconds: float) -> int:
    """The HOG_N that keeps tests.support.hog_jobs' ``hog`` busy for about ``seconds`` here.
    (That module is not imported: it would register its jobs in this process too.)"""
    n = 10**7
    began = time.perf_counter()
    sum(range(n))
    return int(n * seconds / max(time.perf_counter() - began, 1e-6))


def ledger(client: redis.Redis, prefix: str, job_id: str) -> list[RunRecord]:
    entries = client.xrange(Keys(prefix).ledger(job_id)) or []
    return [RunRecord.from_fields(fields) for _, fields in entries]


def hog_runs(client: redis.Redis, prefix: str) -> int:
    return sum(e.status == "succeeded" for e in ledger(client, prefix, "hog"))


def test_a_body_holding_the_gil_does_not_depose_the_leader(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    env = {
        "REDIS_URL": redis_server.url,
        "JOBS_MODULES": "tests.support.probe_jobs,tests.support.hog_jobs",
        "HOG_N": str(calibrate(HOG_SECONDS)),
    }
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    wait_until(lambda: probe_runs(client, prefix) >= 2, 30, "the probe to run")
    epoch = client.get(Keys(prefix).epoch)
    wait_until(lambda: hog_runs(client, prefix) >= 2, 40, "two runs of the GIL-holding body")

    assert client.get(Keys(prefix).epoch) == epoch, "the leader lost its lease to its own job"
    for name in ("scheduler-1", "scheduler-2"):
        assert "stopped firing jobs" not in processes.log(name)
        assert processes.terminate(name) == 0
    assert_exactly_once(read_evidence(client, prefix), min_runs=5)


def test_a_body_holding_the_gil_does_not_stall_an_embedded_api(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    port = free_port()
    processes.gunicorn(
        "api",
        port,
        workers=1,
        REDIS_URL=redis_server.url,
        SCHEDULER_MODE="embedded",
        JOBS_MODULES="tests.support.hog_jobs",
        HOG_N=str(calibrate(HOG_SECONDS)),
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        return answers(f"{base}/healthz", timeout=1)

    wait_until(healthy, 30, "the api")
    unanswered = 0
    deadline = time.monotonic() + 60
    while hog_runs(client, prefix) < 2 and time.monotonic() < deadline:
        unanswered += not healthy()  # a request the worker could not answer within 1 s
        time.sleep(0.1)
    assert hog_runs(client, prefix) >= 2, "the GIL-holding body did not run twice"
    assert unanswered == 0, f"{unanswered} requests went unanswered while a job ran"
    assert processes.terminate("api") == 0


def test_a_sync_body_cut_off_with_its_leader_never_overlaps_the_next_leaders(
    private_redis: RedisServer, processes: Processes, prefix: str, tmp_path: Path
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
                JOBS_MODULES="tests.support.probe_jobs,tests.support.hog_jobs",
                HOG_N="1",
            )
        wait_until(lambda: log.exists() and "start" in log.read_text(), 30, "a sync body")
        old = leader_id(client, prefix)
        assert old is not None
        old_name = processes.by_pid(pid_of(old))
        assert old_name is not None

        proxies[old_name].partition()  # mid-body: the body's slot can no longer be renewed
        cut_at = time.monotonic()
        wait_until(lambda: leader_id(client, prefix) not in (None, old), 3 * TTL + 2, "failover")
        wait_until(lambda: time.monotonic() - cut_at >= 5 * TTL, 6 * TTL, "a long partition")
        proxies[old_name].heal()
        wait_until(
            lambda: member_roles(client, prefix).get(old) == "standby", 5 * TTL, "old leader back"
        )
        # Enough runs to judge by: the cut-off leader's slots hold the probe back (skipped,
        # max_instances) until they expire, so the count is not a matter of how long this took.
        wait_until(runs_at_least(client, prefix, 10), 30, "ten probe runs")
        time.sleep(TTL)
        for name in proxies:
            assert processes.terminate(name) == 0
    finally:
        for proxy in proxies.values():
            proxy.close()

    intervals = body_intervals(str(log), "long_sync")
    assert len({runner for _, _, runner, _ in intervals}) == 2, "both leaders ran the body"
    assert not overlaps(intervals), f"sync bodies of two epochs overlapped: {overlaps(intervals)}"
    assert_exactly_once(read_evidence(client, prefix), min_runs=10, allow_lost=True)
