"""Durable claims (CLAIM_MIN_REPLICAS=1) with a real primary and replica: while the replica
acknowledges, fires run; while it does not (frozen), no body runs and each fire time is
recorded `failed: claim_not_durable`; and a standby cannot lead with an epoch the replica has
not acknowledged. Every fire time stays in the ledger exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import leader_id
from tests.support.ledger_checks import duplicates, gaps, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._firing.record import fire_ms
from tickonce._storage.keys import Keys

FREEZE = 3.0  # seconds the replica acknowledges nothing


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    primary = RedisServer(tmp_path / "primary", persist=True).start()
    replica = primary.replica(tmp_path / "replica", persist=True)
    try:
        yield primary, replica
    finally:
        replica.stop()
        primary.stop()


def test_claims_too_few_replicas_acknowledge_do_not_run(
    primary_and_replica: tuple[RedisServer, RedisServer], processes: Processes, prefix: str
) -> None:
    primary, replica = primary_and_replica
    client = primary.client()
    env = {"REDIS_URL": primary.url, "CLAIM_MIN_REPLICAS": "1"}
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)

    def succeeded() -> int:
        return len(read_evidence(client, prefix).succeeded_times)

    wait_until(lambda: succeeded() >= 3, 30, "three runs with the replica acknowledging")

    # 1. The replica frozen: claims are made but not acknowledged, so nothing runs.
    replica.pause()
    time.sleep(FREEZE)
    replica.resume()
    refused = wait_until(
        lambda: [
            e for e in read_evidence(client, prefix).ledger if e.reason == "claim_not_durable"
        ],
        10,
        "fire times recorded as claim_not_durable",
    )
    assert all(e.status == "failed" and e.started_at is None for e in refused)
    assert all("acknowledged by 0 of the 1 replica(s)" in e.error for e in refused), refused[0]
    evidence = read_evidence(client, prefix)
    ran = set(evidence.written_times)
    assert not ran & {fire_ms(e.scheduled_at) for e in refused}, "a refused claim ran its body"
    after = succeeded()
    wait_until(lambda: succeeded() >= after + 2, 20, "runs again once the replica acknowledges")

    # 2. The replica frozen and the leader killed: the standby takes the lease, but the new
    # epoch is not acknowledged, so it does not lead with it.
    leader = leader_id(client, prefix)
    victim = next(
        name
        for name, process in processes.started.items()
        if leader is not None and f":{process.pid}:" in leader
    )
    epoch_before = int(client.get(Keys(prefix).epoch) or 0)
    replica.pause()
    processes.signal(victim, 9)
    time.sleep(FREEZE)
    frozen_entries = {
        e.epoch for e in read_evidence(client, prefix).ledger if e.epoch > epoch_before
    }
    replica.resume()
    assert not frozen_entries, f"a leader fired with an unacknowledged epoch: {frozen_entries}"
    wait_until(
        lambda: any(e.epoch > epoch_before for e in read_evidence(client, prefix).ledger),
        20,
        "the standby leading once its epoch is acknowledged",
    )

    evidence = read_evidence(client, prefix)
    assert not duplicates(evidence.ledger_times), duplicates(evidence.ledger_times)
    assert not duplicates(evidence.written_times), duplicates(evidence.written_times)
    assert not gaps(evidence.ledger_times), f"fire times missing: {gaps(evidence.ledger_times)}"
