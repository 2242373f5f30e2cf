"""Redis frozen longer than the ttl, then crashed and restarted: no crash loop, recovery
without manual steps, schedules and paused states intact, no fire time run twice."""

from __future__ import annotations

import time

import httpx

from tests.support.cluster import leader_id, probe_runs, runs_at_least
from tests.support.ledger_checks import assert_exactly_once, read_evidence
from tests.support.processes import Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port

TTL = 2.0
TOKEN = "chaos-token-0123456789abcdef"


def test_redis_paused_then_restarted(
    private_redis: RedisServer, processes: Processes, prefix: str
) -> None:
    client = private_redis.client()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "REDIS_URL": private_redis.url,
        "JOBS_MODULES": "tests.support.probe_jobs,tests.support.control_jobs",
    }
    processes.scheduler("scheduler-1", **env)
    processes.scheduler("scheduler-2", **env)
    processes.gunicorn("api", port, workers=2, API_TOKEN=TOKEN, **env)
    wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")

    def api_ok() -> bool:
        return answers(f"{base}/readyz")

    wait_until(api_ok, 30, "the api")
    paused = httpx.post(
        f"{base}/jobs/greet/pause", timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert paused.status_code == 200 and paused.json()["paused"] is True

    def jobs() -> dict[str, tuple[str, bool]]:
        listed = httpx.get(f"{base}/jobs", timeout=5).json()
        return {job["id"]: (job["trigger"], job["paused"]) for job in listed}

    schedule = jobs()
    for fault in ("pause", "restart"):
        before = probe_runs(client, prefix)
        if fault == "pause":
            private_redis.pause()  # frozen: connections hang, nothing answers
            time.sleep(3 * TTL)
            assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503
            private_redis.resume()
        else:
            private_redis.stop()  # a crash; the append-only file keeps what was acknowledged
            time.sleep(TTL)
            private_redis.start()
            client = private_redis.client()
        wait_until(api_ok, 30, f"the api ready after the Redis {fault}")
        wait_until(runs_at_least(client, prefix, before + 3), 30, f"runs after the Redis {fault}")
        assert leader_id(client, prefix) is not None
        assert jobs() == schedule, f"schedules and paused state survive the Redis {fault}"
        for name, process in processes.started.items():
            assert process.poll() is None, f"{name} exited after the Redis {fault}"

    for name in list(processes.started):
        assert processes.terminate(name) == 0
    time.sleep(0.5)
    assert_exactly_once(
        read_evidence(client, prefix),
        min_runs=10,
        allow_lost=True,
        body_errors=("ConnectionError", "TimeoutError"),  # the probe writes to this Redis too
    )
