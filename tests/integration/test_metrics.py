"""Prometheus metrics are cluster-wide: every worker of every replica reports the same."""

from __future__ import annotations

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import probe_runs
from tests.support.ledger_checks import read_evidence
from tests.support.processes import Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.processes


def samples(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_agree_across_workers_and_replicas_and_with_the_ledger(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    scheduler = "scheduler"
    processes.scheduler(scheduler, REDIS_URL=redis_server.url)
    ports = [free_port(), free_port()]
    for n, port in enumerate(ports):
        processes.gunicorn(f"api-{n}", port, workers=2, REDIS_URL=redis_server.url)
    wait_until(lambda: probe_runs(client, prefix) >= 5, 30, "five runs")
    assert processes.terminate(scheduler) == 0  # freeze the numbers

    for port in ports:
        url = f"http://127.0.0.1:{port}/healthz"
        wait_until(lambda url=url: answers(url), 30, f"gunicorn on {port}")  # type: ignore[misc]
    ledger = read_evidence(client, prefix).ledger
    views = [samples(f"http://127.0.0.1:{port}") for port in ports for _ in range(4)]
    assert all(view == views[0] for view in views), "every worker reports the same figures"

    view = views[0]
    succeeded = frozenset({("job", "probe"), ("status", "succeeded")})
    assert view[("tickonce_runs_total", succeeded)] == len(ledger)
    count = frozenset({("job", "probe")})
    assert view[("tickonce_fire_lateness_seconds_count", count)] == len(ledger)
    assert view[("tickonce_run_duration_seconds_count", count)] == len(ledger)
    assert view[("tickonce_lease_acquisitions_total", frozenset())] >= 1
    assert view[("tickonce_leader_epoch", frozenset({("shard", "0")}))] >= 1
    assert ("tickonce_claims_refused_total", frozenset({("reason", "taken")})) in view
