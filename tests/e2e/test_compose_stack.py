"""End to end on the real docker-compose.yml: 3 api replicas x 2 workers behind the load
balancer, 2 schedulers, Redis with persistence. Every request goes through the load balancer.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from services.core.keys import Keys
from services.core.ledger import fire_ms
from tests.e2e.conftest import API_REPLICAS, API_TOKEN, TTL, Stack
from tests.support.ledger_checks import duplicates, gaps
from tests.support.processes import wait_until

pytestmark = pytest.mark.containers

HEARTBEAT_BEATS = Keys("tickonce:").example("heartbeat")


def ledger(stack: Stack) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = stack.get("/jobs/heartbeat/runs", limit=1000)
    return runs


def ms(text: str) -> int:
    return fire_ms(datetime.fromisoformat(text))


def assert_heartbeat_once(stack: Stack, *, min_runs: int) -> list[dict[str, Any]]:
    """Every heartbeat time has one ledger entry; the job's own beats match the successes.

    The stack keeps running, so the newest two seconds (runs possibly between writing their
    beat and their ledger entry) are left out of the comparison.
    """
    entries = ledger(stack)
    lines = stack.redis("LRANGE", HEARTBEAT_BEATS, "0", "-1").splitlines()
    beats = [json.loads(line) for line in lines if line.strip()]
    settled = max(ms(entry["scheduled_at"]) for entry in entries) - 2000
    times = [t for e in entries if (t := ms(e["scheduled_at"])) <= settled]
    beat_times = [t for b in beats if (t := ms(b["scheduled_at"])) <= settled]
    succeeded = sorted(
        t for e in entries if e["status"] == "succeeded" and (t := ms(e["scheduled_at"])) <= settled
    )
    assert not duplicates(times), f"times with two ledger entries: {duplicates(times)}"
    assert not duplicates(beat_times), f"times the job ran twice: {duplicates(beat_times)}"
    assert sorted(beat_times) == succeeded, "the job's own beats and the ledger disagree"
    assert not gaps(times), f"fire times without a ledger entry: {gaps(times)}"
    assert len(succeeded) >= min_runs
    return entries


def first_run_after(stack: Stack, moment: float, not_by: str) -> dict[str, Any] | None:
    fresh = [
        e
        for e in ledger(stack)
        if e["started_at"]
        and e["runner"] != not_by
        and datetime.fromisoformat(e["started_at"]).timestamp() >= moment
    ]
    return min(fresh, key=lambda e: e["started_at"]) if fresh else None


def test_the_heartbeat_runs_exactly_once_per_scheduled_time(stack: Stack) -> None:
    assert len(stack.containers("api")) == API_REPLICAS
    assert len(stack.containers("scheduler")) == 2

    def members() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = stack.get("/scheduler")["members"]
        return found

    wait_until(lambda: len(members()) == 2, 30, "two scheduler members")
    assert sorted(m["role"] for m in members()) == ["leader", "standby"]

    wait_until(lambda: ledger(stack), 30, "the first heartbeat")
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started >= 11, 20, "11 s of heartbeats")
    assert_heartbeat_once(stack, min_runs=11)


def test_docker_kill_of_the_leader_fails_over_within_ttl_plus_one_second(stack: Stack) -> None:
    leader = stack.get("/scheduler")["leader"]
    host = leader.split(":")[0]
    [container] = [c for c in stack.containers("scheduler") if c["Id"].startswith(host)]

    subprocess.run(["docker", "kill", container["Id"]], check=True, capture_output=True, timeout=30)
    killed_at = time.time()
    first = wait_until(
        lambda: first_run_after(stack, killed_at, not_by=leader),
        3 * TTL + 10,
        "a heartbeat fired by the standby",
    )
    assert first is not None
    failover = datetime.fromisoformat(first["started_at"]).timestamp() - killed_at
    assert failover <= TTL + 1, f"the standby fired {failover:.2f}s after the kill"
    time.sleep(3)
    assert_heartbeat_once(stack, min_runs=14)


def test_a_redis_restart_keeps_schedules_and_paused_state_and_everything_recovers(
    stack: Stack,
) -> None:
    def job_states() -> dict[str, tuple[str, bool]]:
        return {job["id"]: (job["trigger"], job["paused"]) for job in stack.get("/jobs")}

    before = job_states()
    assert before["paused_report"] == ("interval[0:05:00]", True)
    assert before["heartbeat"] == ("interval[0:00:01]", False)
    started = {
        c["Id"]: c["State"]["StartedAt"]
        for service in ("api", "scheduler")
        for c in stack.containers(service)
    }

    stack.compose_run("restart", "redis")
    restarted_at = time.time()

    def ready() -> bool:
        try:
            return httpx.get(f"{stack.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 60, "the API ready again")
    assert job_states() == before, "schedules and paused state survive a Redis restart"
    wait_until(
        lambda: first_run_after(stack, restarted_at + 1, not_by=""),
        30,
        "heartbeats after the restart, without restarting api or schedulers",
    )
    after = {
        c["Id"]: c["State"]["StartedAt"]
        for service in ("api", "scheduler")
        for c in stack.containers(service)
    }
    assert after == started, "no api or scheduler container was restarted"
    assert_heartbeat_once(stack, min_runs=15)


@pytest.mark.chaos
def test_requests_keep_succeeding_while_an_api_replica_is_killed(stack: Stack) -> None:
    statuses: list[int | str] = []
    stop = threading.Event()

    def load() -> None:
        with stack.http() as client:
            while not stop.is_set():
                try:
                    response = client.get("/jobs")
                    statuses.append(
                        200
                        if response.status_code == 200
                        else f"{response.status_code}: {response.text[:300]}"
                    )
                except httpx.HTTPError as exc:
                    statuses.append(type(exc).__name__)
                time.sleep(0.05)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1)
        victim = stack.containers("api")[0]["Id"]
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=30)
        time.sleep(6)
    finally:
        stop.set()
        worker.join(timeout=30)
    failures = [status for status in statuses if status != 200]
    assert len(statuses) > 20
    lb_errors = [
        line
        for line in stack.compose_run("logs", "--no-color", "lb").splitlines()
        if " 200 " not in line and "GET /jobs" in line
    ]
    assert not failures, (
        f"{len(failures)} of {len(statuses)} requests failed: {failures[:5]}; "
        f"load balancer: {lb_errors[-5:]}"
    )
    assert_heartbeat_once(stack, min_runs=20)  # the schedule went on, exactly once


def test_a_replica_added_by_scale_receives_requests(stack: Stack) -> None:
    before = {c["Id"] for c in stack.containers("api", include_stopped=True)}
    stack.compose_run("up", "-d", "--no-recreate", "--wait", "--scale", f"api={API_REPLICAS + 1}")
    [added] = [c["Id"] for c in stack.containers("api") if c["Id"] not in before]
    marker = uuid.uuid4().hex

    def served_by_new_replica() -> bool:
        with stack.http() as client:
            for _ in range(2 * (API_REPLICAS + 1)):
                assert client.get("/healthz", params={"probe": marker}).status_code == 200
        logs = subprocess.run(
            ["docker", "logs", added], capture_output=True, text=True, timeout=30, check=True
        )
        return marker in logs.stdout + logs.stderr

    wait_until(served_by_new_replica, 30, "a request served by the added replica")


def test_every_change_works_through_the_load_balancer(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    with stack.http() as client:
        assert client.post("/jobs/tick/pause").status_code == 401
        paused = client.post("/jobs/tick/pause", headers=auth)
        assert paused.status_code == 200 and paused.json()["paused"] is True
        resumed = client.post("/jobs/tick/resume", headers=auth)
        assert resumed.status_code == 200 and resumed.json()["paused"] is False

        body = {
            "id": "heartbeat-slow",
            "task": "heartbeat",
            "trigger": {"type": "cron", "expression": "*/5 * * * *", "timezone": "UTC"},
        }
        created = client.post("/jobs", json=body, headers=auth)
        assert created.status_code == 201, created.text
        changed = client.patch(
            "/jobs/heartbeat-slow", headers=auth, json={"trigger": {"type": "interval", "hours": 2}}
        )
        assert changed.json()["trigger"] == "interval[2:00:00]"
        assert client.post("/jobs/heartbeat-slow/run", headers=auth).status_code == 200
        wait_until(lambda: client.get("/jobs/heartbeat-slow/runs").json(), 20, "the run now")
        [run] = client.get("/jobs/heartbeat-slow/runs").json()
        assert (run["status"], run["manual"]) == ("succeeded", True)
        assert client.delete("/jobs/heartbeat-slow", headers=auth).status_code == 204
        assert client.get("/jobs/heartbeat-slow").status_code == 404

        metrics = client.get("/metrics").text
        assert 'tickonce_runs_total{job="heartbeat",status="succeeded"}' in metrics
        page = client.get("/")
        assert page.status_code == 200 and "tickonce" in page.text
