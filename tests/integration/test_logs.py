"""LOG_FORMAT=json: every line is one JSON object; each run has one line with its fields."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from tests.support.cluster import probe_runs
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.processes

RUN_FIELDS = {"job_id", "scheduled_at", "status", "duration_ms", "runner", "epoch"}


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


@pytest.mark.parametrize("service", ["scheduler", "gunicorn"])
def test_json_logs_have_one_structured_line_per_run(
    service: str,
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    env = {"REDIS_URL": redis_server.url, "LOG_FORMAT": "json"}
    if service == "scheduler":
        processes.scheduler(service, **env)
    else:
        port = free_port()
        processes.gunicorn(service, port, workers=1, SCHEDULER_MODE="embedded", **env)
        wait_until(lambda: probe_runs(client, prefix) >= 1, 30, "a run")
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    wait_until(lambda: probe_runs(client, prefix) >= 3, 30, "three runs")
    assert processes.terminate(service) == 0

    records = json_lines(processes.log(service))
    runs = [r["run"] for r in records if r.get("logger") == "tickonce.runs" and "run" in r]
    assert len(runs) >= 3
    assert all(set(run) >= RUN_FIELDS for run in runs), runs[0]
    if service == "gunicorn":
        assert any("GET /healthz" in str(r.get("message")) for r in records), "access log"
