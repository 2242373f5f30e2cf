"""A container restart reuses its hostname and pid (pid 1 in its pid namespace): the leader is
SIGKILLed mid-run and comes back at once as a standby, under the same host and pid, while
another scheduler leads. The killed run must still end as exactly one ledger entry,
``failed: runner_lost``: the restarted process must not pass for the dead one."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import redis

from tests.support.cluster import host_of, leader_id, member_roles
from tests.support.ledger_checks import duplicates, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._firing.record import RunRecord, fire_ms

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

TTL = 2.0  # LEASE_TTL_SECONDS of the processes fixture
JOB = "long"  # tests.support.overlap_jobs: every 1 s, a 3-s body, max_instances=1


def unfinished_starts(log: Path, runner: str) -> list[dict[str, str | float]]:
    """Bodies ``runner`` started and never ended, from the job's own log (OVERLAP_LOG)."""
    if not log.exists():
        return []
    events = [json.loads(line) for line in log.read_text().splitlines() if line]
    ended = {e["scheduled_at"] for e in events if e["event"] == "end" and e["runner"] == runner}
    return [
        e
        for e in events
        if e["event"] == "start" and e["runner"] == runner and e["scheduled_at"] not in ended
    ]


def body_running_for(log: Path, runner: str, at_least: float) -> Callable[[], bool]:
    """A condition: ``runner`` has a body running for ``at_least`` seconds (and < 2 s more)."""

    def check() -> bool:
        ages = [time.time() - float(e["at"]) for e in unfinished_starts(log, runner)]
        return any(at_least <= age <= at_least + 2 for age in ages)

    return check


def entries_for(client: redis.Redis, prefix: str, moment: int) -> list[RunRecord]:
    ledger = read_evidence(client, prefix, JOB).ledger
    return [entry for entry in ledger if fire_ms(entry.scheduled_at) == moment]


def test_a_run_lost_to_a_container_restart_is_recorded_although_host_and_pid_repeat(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    tmp_path: Path,
) -> None:
    probe = ["unshare", "--pid", "--uts", "--mount-proc", "--kill-child", "true"]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, f"this test needs root and unshare: {done.stderr.strip()}"

    log = tmp_path / "bodies.jsonl"
    env = {
        "REDIS_URL": redis_server.url,
        "JOBS_MODULES": "tests.support.overlap_jobs",
        "OVERLAP_LOG": str(log),
    }
    processes.scheduler_in_container("a", "host-a", **env)
    killed = wait_until(lambda: leader_id(client, prefix), 30, "scheduler a to lead")
    assert killed is not None and host_of(killed) == "host-a"
    processes.scheduler_in_container("b", "host-b", **env)
    wait_until(lambda: len(member_roles(client, prefix)) == 2, 30, "b to join as a standby")

    # Kill the leader's whole namespace mid-run (the body takes 3 s).
    wait_until(body_running_for(log, killed, 0.5), 15, f"a body of {killed} running")
    processes.signal("a", signal.SIGKILL)
    killed_at = time.monotonic()
    processes.started["a"].wait(timeout=10)
    [lost] = unfinished_starts(log, killed)
    lost_ms = fire_ms(datetime.fromisoformat(str(lost["scheduled_at"])))

    # The container restarts: same hostname, pid 1 again, as a standby while b leads.
    wait_until(
        lambda: (holder := leader_id(client, prefix)) and host_of(holder) == "host-b",
        3 * TTL,
        "b to take over",
    )
    processes.scheduler_in_container("a-restarted", "host-a", **env)
    roles = wait_until(
        lambda: {
            member: role
            for member, role in member_roles(client, prefix).items()
            if host_of(member) == "host-a" and role == "standby"
        },
        15,
        "the restarted a to join as a standby",
    )
    assert not entries_for(client, prefix, lost_ms), (
        f"recorded {time.monotonic() - killed_at:.1f}s after the kill, before the restarted a "
        "joined: it came back too late to show anything"
    )

    # Its runner was silent for 3 ttl (the member window); the leader sweeps every ttl.
    entries = wait_until(
        lambda: entries_for(client, prefix, lost_ms),
        3 * TTL + TTL + 5,
        f"an entry for the fire at {lost['scheduled_at']} of {killed}, killed mid-run "
        f"(the restarted container is {sorted(roles)})",
    )
    time.sleep(TTL + 0.5)  # one more sweep: no second entry
    entries = entries_for(client, prefix, lost_ms)
    assert [(e.status, e.reason, e.runner) for e in entries] == [("failed", "runner_lost", killed)]
    holder = leader_id(client, prefix)
    assert holder is not None and host_of(holder) == "host-b", "b led throughout"
    times = read_evidence(client, prefix, JOB).ledger_times
    assert not duplicates(times), f"fire times recorded twice: {duplicates(times)}"

    for name in ("a-restarted", "b"):
        assert processes.terminate(name) == 0, f"{name} did not stop cleanly"
