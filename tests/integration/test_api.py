"""The read API against a real Redis, and its answers while Redis is away."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import redis
from fastapi.testclient import TestClient

from tests.support.cluster import pid_of, probe_runs
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings


def test_read_endpoints_describe_jobs_runs_and_leadership(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    scheduler = processes.scheduler("scheduler", REDIS_URL=redis_server.url)
    wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")

    with TestClient(create_app(make_settings(redis_server))) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        assert http.get("/readyz").json() == {"status": "ready"}

        [listed] = http.get("/jobs").json()
        job = http.get("/jobs/probe").json()
        assert listed == job
        assert job["trigger"] == "interval[0:00:01]"
        assert (
            job["paused"],
            job["max_instances"],
            job["misfire_grace_time"],
        ) == (False, 1, 30)
        assert (job["catch_up"], job["timeout"]) == ("all", None)
        assert job["next_run_time"] is not None and job["task"] == "probe"

        missing = http.get("/jobs/nope")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "job 'nope' not found"}
        assert http.get("/jobs/nope/runs").status_code == 404

        runs = http.get("/jobs/probe/runs", params={"limit": 2}).json()
        assert len(runs) == 2
        assert runs[0]["scheduled_at"] > runs[1]["scheduled_at"], "newest first"
        assert {run["status"] for run in runs} == {"succeeded"}
        assert pid_of(runs[0]["runner"]) == scheduler.pid and runs[0]["epoch"] == 1
        assert http.get("/jobs/probe/runs", params={"limit": 0}).status_code == 422

        status = http.get("/scheduler").json()
        assert pid_of(status["leader"]) == scheduler.pid
        assert status["epoch"] == 1 and 0 < status["lease_expires_in_ms"] <= 2000
        assert [(m["role"], m["mode"]) for m in status["members"]] == [("leader", "scheduler")]

        paths = http.get("/openapi.json").json()["paths"]
        assert {
            "/healthz",
            "/readyz",
            "/scheduler",
            "/jobs",
            "/jobs/{job_id}",
            "/jobs/{job_id}/runs",
        } <= set(paths)


def test_without_redis_the_api_answers_503_and_recovers_by_itself(
    tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    server = RedisServer(tmp_path / "redis")  # chosen port, not started yet
    with TestClient(create_app(make_settings(server))) as http:
        assert http.get("/healthz").status_code == 200, "liveness must not need Redis"
        for path in ("/readyz", "/jobs", "/jobs/probe", "/jobs/probe/runs", "/scheduler"):
            answer = http.get(path)
            assert answer.status_code == 503, path
            assert "Redis at redis://127.0.0.1" in answer.json()["detail"], path

        server.start()
        try:
            assert http.get("/readyz").status_code == 200
            assert http.get("/jobs").json() == []
        finally:
            server.stop()


def test_the_first_request_after_a_redis_restart_succeeds(
    private_redis: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    with TestClient(create_app(make_settings(private_redis))) as http:
        assert http.get("/jobs").status_code == 200  # the pool now holds a connection
        private_redis.stop()
        private_redis.start()
        answer = http.get("/jobs")
        assert answer.status_code == 200, (
            f"a stale pooled connection must be retried: {answer.text}"
        )
