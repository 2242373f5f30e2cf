"""End to end on the real docker-compose.yml: 3 api replicas x 2 workers behind the load
balancer, 2 schedulers, Redis with persistence. Every request goes through the load balancer.

Each test starts from the stack's known state (the ``stack`` fixture restores it) and asserts
on what happened from its own start on, so any test runs alone or in any order.
"""

from __future__ import annotations

import functools
import json
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import API_REPLICAS, API_TOKEN, SCHEDULER_REPLICAS, TTL, Stack
from tests.support.cluster import host_of
from tests.support.ledger_checks import duplicates, gaps, spread
from tests.support.processes import wait_until
from tickonce._firing.record import fire_ms
from tickonce._storage.keys import Keys

pytestmark = pytest.mark.containers

HEARTBEAT_BEATS = Keys("tickonce:").example("heartbeat")


def ledger(stack: Stack) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = stack.get("/jobs/heartbeat/runs", limit=1000)
    return runs


def ms(text: str) -> int:
    return fire_ms(datetime.fromisoformat(text))


@dataclass
class Heartbeats:
    """Heartbeat fire times (ms) scheduled from a test's start on, that have settled."""

    times: list[int]  # every ledger entry
    beat_times: list[int]  # the job's own beats
    succeeded: list[int]  # ledger entries that succeeded


def heartbeats_since(stack: Stack, since: float) -> Heartbeats:
    """The stack keeps running, so the newest two seconds (runs possibly between writing their
    beat and their ledger entry) are left out."""
    entries = ledger(stack)
    if not entries:
        return Heartbeats([], [], [])
    lines = stack.redis("LRANGE", HEARTBEAT_BEATS, "0", "-1").splitlines()
    beats = [json.loads(line) for line in lines if line.strip()]
    start = int(since * 1000)
    settled = max(ms(entry["scheduled_at"]) for entry in entries) - 2000

    def window(times: list[int]) -> list[int]:
        return sorted(t for t in times if start <= t <= settled)

    def entry_times(entry: dict[str, Any]) -> list[int]:
        first = ms(entry["scheduled_at"])
        last = ms(entry["until"]) if entry.get("until") else first
        return spread(first, last, int(entry.get("count") or 1))

    return Heartbeats(
        times=window([t for e in entries for t in entry_times(e)]),
        beat_times=window([ms(b["scheduled_at"]) for b in beats]),
        succeeded=window([ms(e["scheduled_at"]) for e in entries if e["status"] == "succeeded"]),
    )


def assert_heartbeat_once(stack: Stack, *, since: float, min_runs: int) -> None:
    """From ``since`` on (the test's own window), once ``min_runs`` heartbeats have succeeded:
    every heartbeat time has one ledger entry, and the job's own beats match the successes."""
    wait_until(
        lambda: len(heartbeats_since(stack, since).succeeded) >= min_runs,
        min_runs + 30,
        f"{min_runs} settled heartbeats since the test began",
        interval=0.5,
    )
    found = heartbeats_since(stack, since)
    assert not duplicates(found.times), f"times with two ledger entries: {duplicates(found.times)}"
    assert not duplicates(found.beat_times), (
        f"times the job ran twice: {duplicates(found.beat_times)}"
    )
    assert found.beat_times == found.succeeded, "the job's own beats and the ledger disagree"
    assert not gaps(found.times), f"fire times without a ledger entry: {gaps(found.times)}"


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
    since = time.time()
    assert len(stack.containers("api")) == API_REPLICAS
    assert len(stack.containers("scheduler")) == SCHEDULER_REPLICAS
    members = stack.get("/scheduler")["members"]
    assert sorted(member["role"] for member in members) == ["leader", "standby"]
    assert_heartbeat_once(stack, since=since, min_runs=11)


@pytest.mark.chaos
def test_docker_kill_of_the_leader_fails_over_within_ttl_plus_one_second(stack: Stack) -> None:
    since = time.time()
    leader = stack.get("/scheduler")["leader"]
    [container] = [
        c for c in stack.containers("scheduler") if c["Config"]["Hostname"] == host_of(leader)
    ]

    subprocess.run(["docker", "kill", container["Id"]], check=True, capture_output=True, timeout=30)
    killed_at = time.time()
    first = wait_until(
        lambda: first_run_after(stack, killed_at, not_by=leader),
        3 * TTL + 10,
        "a heartbeat fired by the standby",
    )
    assert first is not None
    assert host_of(first["runner"]) != host_of(leader)
    failover = datetime.fromisoformat(first["started_at"]).timestamp() - killed_at
    assert failover <= TTL + 1, f"the standby fired {failover:.2f}s after the kill"
    assert_heartbeat_once(stack, since=since, min_runs=6)
    # The stack is left with one scheduler: the next test's `stack` fixture restores it.


@pytest.mark.chaos
def test_a_redis_restart_keeps_schedules_and_paused_state_and_everything_recovers(
    stack: Stack,
) -> None:
    since = time.time()

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

    wait_until(stack.ready, 60, "the API ready again")
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
    assert_heartbeat_once(stack, since=since, min_runs=5)


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

    since = time.time()
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
    assert_heartbeat_once(stack, since=since, min_runs=4)  # the schedule went on, exactly once
    # The stack is left with a replica fewer: the next test's `stack` fixture restores it.


def test_a_replica_added_by_scale_receives_requests(stack: Stack) -> None:
    began = time.time()
    before = {c["Id"] for c in stack.containers("api", include_stopped=True)}
    stack.compose_run("up", "-d", "--no-recreate", "--wait", "--scale", f"api={API_REPLICAS + 1}")
    [added] = [c["Id"] for c in stack.containers("api") if c["Id"] not in before]
    wait_until(
        functools.partial(stack.served_by, added, since=began),
        30,
        "a request served by the added replica",
        interval=0.5,
    )
    # The stack is left with a replica more: the next test's `stack` fixture scales it back.


def test_every_change_works_through_the_load_balancer(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    schedule = f"heartbeat-{uuid.uuid4().hex[:8]}"  # its run history outlives its deletion
    with stack.http() as client:
        try:
            assert client.post("/jobs/tick/pause").status_code == 401
            paused = client.post("/jobs/tick/pause", headers=auth)
            assert paused.status_code == 200 and paused.json()["paused"] is True
            resumed = client.post("/jobs/tick/resume", headers=auth)
            assert resumed.status_code == 200 and resumed.json()["paused"] is False

            body = {
                "id": schedule,
                "task": "heartbeat",
                "trigger": {"type": "cron", "expression": "*/5 * * * *", "timezone": "UTC"},
            }
            created = client.post("/jobs", json=body, headers=auth)
            assert created.status_code == 201, created.text
            every_2h = {"trigger": {"type": "interval", "hours": 2}}
            changed = client.patch(f"/jobs/{schedule}", headers=auth, json=every_2h)
            assert changed.json()["trigger"] == "interval[2:00:00]"
            assert client.post(f"/jobs/{schedule}/run", headers=auth).status_code == 200
            wait_until(lambda: client.get(f"/jobs/{schedule}/runs").json(), 20, "the run now")
            [run] = client.get(f"/jobs/{schedule}/runs").json()
            assert (run["status"], run["manual"]) == ("succeeded", True)
            assert client.delete(f"/jobs/{schedule}", headers=auth).status_code == 204
            assert client.get(f"/jobs/{schedule}").status_code == 404

            metrics = client.get("/metrics").text
            assert 'tickonce_runs_total{job="heartbeat",status="succeeded"}' in metrics
            page = client.get("/")
            assert page.status_code == 200 and "tickonce" in page.text
        finally:  # whatever failed, leave the jobs as the stack started them
            client.post("/jobs/tick/resume", headers=auth)
            client.delete(f"/jobs/{schedule}", headers=auth)
