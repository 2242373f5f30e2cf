"""tickonce on a real Redis Cluster of three masters (redis-server processes): two schedulers
and the api, with one shard (every key in one slot) and with three shards (spread over the
nodes). Each fire time runs once, and the api reads, commands (pause, resume, run now) and
counts across the shards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import httpx
import pytest
import redis

from tests.support.ledger_checks import assert_exactly_once, duplicates, gaps, read_evidence
from tests.support.load_jobs import LOAD_JOBS
from tests.support.processes import Processes, answers, wait_until
from tests.support.redis_cluster import RedisClusterGroup
from tests.support.redis_server import free_port
from tickonce._storage.keys import Keys

TOKEN = "cluster-token-0123456789abcdef"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup(tmp_path / "cluster").start()
    yield group
    group.stop()


@pytest.mark.parametrize("shards", [1, 3])
def test_jobs_run_once_on_a_redis_cluster(
    cluster: RedisClusterGroup, processes: Processes, prefix: str, shards: int
) -> None:
    keys = Keys(prefix, shards, 0, tagged=True)
    client = cast(redis.Redis, cluster.client())  # the same commands, routed by key
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "REDIS_URL": cluster.url,
        "REDIS_CLUSTER": "true",
        "SCHEDULER_SHARDS": str(shards),
        "JOBS_MODULES": "tests.support.probe_jobs,tests.support.load_jobs",
    }
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    processes.gunicorn("api", port, workers=2, API_TOKEN=TOKEN, **env)

    def probe_runs() -> int:
        return len(read_evidence(client, prefix, keys=keys).succeeded_times)

    wait_until(lambda: probe_runs() >= 3, 30, "three probe runs")

    wait_until(lambda: answers(f"{base}/readyz"), 30, "the api")
    status = httpx.get(f"{base}/scheduler", timeout=10).json()
    assert [shard["shard"] for shard in status["shards"]] == list(range(shards))
    assert all(shard["leader"] for shard in status["shards"]), status
    listed = httpx.get(f"{base}/jobs", params={"limit": 1000}, timeout=10).json()
    assert sorted(job["id"] for job in listed) == sorted(["probe", *LOAD_JOBS])
    runs = httpx.get(f"{base}/jobs/load-07/runs", timeout=10).json()
    assert runs and all(run["job_id"] == "load-07" for run in runs)
    paused = httpx.post(
        f"{base}/jobs/load-13/pause", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
    resumed = httpx.post(
        f"{base}/jobs/load-13/resume", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert resumed.status_code == 200 and resumed.json()["paused"] is False, resumed.text
    ran = httpx.post(
        f"{base}/jobs/load-21/run", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert ran.status_code == 200, ran.text

    def ran_now() -> bool:
        runs = httpx.get(f"{base}/jobs/load-21/runs", timeout=10).json()
        return any(run["manual"] and run["status"] == "succeeded" for run in runs)

    wait_until(ran_now, 20, "the run-now of load-21 in its ledger")
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert 'tickonce_runs_total{job="probe",status="succeeded"}' in metrics

    wait_until(lambda: probe_runs() >= 10, 30, "ten probe runs")
    for name in list(processes.started):
        assert processes.terminate(name) == 0, processes.log(name)[-3000:]

    assert_exactly_once(read_evidence(client, prefix, keys=keys), min_runs=10)
    for job_id in LOAD_JOBS:
        times = read_evidence(client, prefix, job_id, keys=keys).ledger_times
        assert times and not duplicates(times), f"{job_id}: {duplicates(times)}"
        if job_id != "load-13":  # paused for a moment: its fire times meanwhile never came
            assert not gaps(times), f"{job_id}: fire times missing from the ledger {gaps(times)}"
    nodes = {cluster.node_of(shard.lease) for shard in keys.every_shard()}
    holding = [n for n, found in enumerate(cluster.keys_per_node()) if found]
    assert set(holding) >= nodes, "every shard's keys live where its slot is"
