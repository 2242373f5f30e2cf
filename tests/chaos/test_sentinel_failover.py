"""Redis behind Sentinels: the primary SIGKILLed, or frozen (a partition) until a replica is
promoted and then back as a replica answering READONLY, under load (a 1-s probe, two
schedulers, an api answering). Schedulers and api find the new primary by themselves (no crash
loop, no wedged leader), firing resumes, and every fire time after the failover is recorded.

Claims here are not made durable (CLAIM_MIN_REPLICAS=0): a claim the primary acknowledged but
had not yet replicated when it died can be lost with it, so this test does not demand that no
time ran twice; it reports what it saw."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.ledger_checks import duplicates, gaps, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import free_port
from tests.support.sentinel import MASTER, SentinelGroup


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinels", replicas=2).start()
    try:
        yield group
    finally:
        group.stop()


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_the_services_follow_a_failover_to_the_promoted_replica(
    sentinels: SentinelGroup, processes: Processes, prefix: str, fault: str
) -> None:
    env = {
        "REDIS_URL": "redis:///0",  # with Sentinels: only the database (and any credentials)
        "REDIS_SENTINELS": sentinels.addresses,
        "REDIS_SENTINEL_MASTER": MASTER,
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    processes.gunicorn("api", port, workers=2, **env)

    def primary() -> redis.Redis:
        return sentinels.primary().client()

    def succeeded() -> int:
        try:
            return len(read_evidence(primary(), prefix).succeeded_times)
        except redis.RedisError:
            return 0

    def leader_named() -> bool:
        try:
            answer = httpx.get(f"{base}/scheduler", timeout=3)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["leader"] is not None

    wait_until(lambda: succeeded() >= 3, 30, "three probe runs before the fault")
    wait_until(leader_named, 30, "the api naming the leader")

    began = time.time()
    if fault == "kill":
        old = sentinels.kill_primary()
        new = sentinels.wait_for_new_primary(old)
    else:
        frozen = sentinels.freeze_primary()
        old = frozen.port
        new = sentinels.wait_for_new_primary(old)
        frozen.resume()  # back, and made a replica: writes sent to it answer READONLY
        wait_until(
            lambda: frozen.client().info("replication")["role"] == "slave",
            30,
            "the old primary demoted to a replica",
        )
    promoted = time.time()

    def since_promotion() -> list[int]:
        """Fire times recorded from 2 s after the promotion (the failover window itself is
        where an unreplicated claim can be lost: durable claims are another test's)."""
        try:
            times = read_evidence(primary(), prefix).ledger_times
        except redis.RedisError:
            return []
        return [t for t in times if t / 1000 > promoted + 2]

    wait_until(lambda: len(since_promotion()) >= 5, 40, "five fire times after the promotion")
    resumed = time.time()
    wait_until(leader_named, 30, "the api answering through the new primary")

    for name in ("scheduler-1", "scheduler-2", "api"):
        assert processes.started[name].poll() is None, f"{name} exited: {processes.log(name)}"
    evidence = read_evidence(primary(), prefix)
    after = since_promotion()
    assert not gaps(after), f"fire times missing after the failover: {gaps(after)}"
    assert not duplicates(after), f"fire times twice after the failover: {duplicates(after)}"
    print(
        f"{fault}: primary {old}, {new} promoted {promoted - began:.1f}s after the fault; "
        f"five fires recorded {resumed - promoted:.1f}s later; fire times recorded twice "
        f"across the failover: {duplicates(evidence.ledger_times)}"
    )
