"""Stopping a leader: the lease goes at once, running jobs finish within the grace period."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis

from tests.support.cluster import leader_pid, pid_of
from tests.support.ledger_checks import read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.timeline_jobs import endless, events, slow
from tickonce._config.settings import Settings
from tickonce._jobs.registry import Registry
from tickonce._leadership.contender import Contender
from tickonce._storage.keys import Keys


async def test_stop_releases_the_lease_first_and_lets_the_running_job_finish(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "bodies.jsonl"
    monkeypatch.setenv("BODY_LOG", str(log))
    jobs = Registry()
    jobs.job("interval", seconds=1, id="slow")(slow)
    jobs.job("interval", seconds=1, id="endless")(endless)

    settings = make_settings(redis_server, jobs_modules=[], shutdown_grace_seconds=3.0)
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    async with asyncio.timeout(15):
        while not events(log, "slow", "start"):  # noqa: ASYNC110 - the body is in a worker
            await asyncio.sleep(0.02)
    await contender.stop()
    await running

    ended = events(log, "slow", "end")
    assert [e["lease_held"] for e in ended] == [False], "the lease is released before jobs drain"
    [slow_run] = read_evidence(client, prefix, "slow").ledger
    assert slow_run.status == "succeeded", "a job running at stop finishes within the grace"
    endless_runs = read_evidence(client, prefix, "endless").ledger
    assert [(run.status, run.reason) for run in endless_runs] == [("failed", "cancelled")], (
        "a job still running when the grace period ends is cancelled and recorded"
    )


@contextlib.contextmanager
def request_in_progress(port: int) -> Iterator[None]:
    """A request whose body is still being sent: uvicorn keeps the worker serving it after a
    SIGTERM, and the app's lifespan (which stops the contender) ends only after that."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as request:
        request.sendall(
            b"POST /jobs HTTP/1.1\r\nHost: web\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.5)
        yield


def web_worker(client: redis.Redis, prefix: str, scheduler_pid: int) -> int:
    members = cast(list[str], client.zrange(Keys(prefix).members, 0, -1))
    [worker] = [pid_of(member) for member in members if pid_of(member) != scheduler_pid]
    return worker


def test_a_web_worker_that_is_stopping_takes_no_lease_while_it_serves_its_last_requests(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    """A leader about to go would fire, hand over again moments later, and leave its bodies
    running past its own end: from its SIGTERM on, a worker takes no lease."""
    env = {"REDIS_URL": redis_server.url, "LEASE_TTL_SECONDS": "1"}
    scheduler = processes.scheduler("scheduler", **env)
    wait_until(lambda: leader_pid(client, prefix) == scheduler.pid, 30, "the scheduler leading")
    port = free_port()
    processes.gunicorn("web", port, workers=1, SCHEDULER_MODE="embedded", **env)
    wait_until(lambda: client.zcard(Keys(prefix).members) >= 2, 60, "the web worker contending")
    worker = web_worker(client, prefix, scheduler.pid)
    with request_in_progress(port):
        processes.signal("web", signal.SIGTERM)
        time.sleep(1)
        assert os.path.exists(f"/proc/{worker}"), "the worker serves its request meanwhile"
        assert processes.terminate("scheduler") == 0
        holders = set()
        until = time.monotonic() + 4  # the lease is free: 4 ttl for anyone to take it
        while time.monotonic() < until:
            holders.add(leader_pid(client, prefix))
            time.sleep(0.05)
        assert worker not in holders, "the stopping worker took the lease"
    assert processes.started["web"].wait(timeout=30) == 0


def test_a_leading_web_worker_hands_over_at_its_sigterm_not_after_its_last_requests(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    env = {"REDIS_URL": redis_server.url, "LEASE_TTL_SECONDS": "1"}
    port = free_port()
    processes.gunicorn("web", port, workers=1, SCHEDULER_MODE="embedded", **env)
    wait_until(lambda: leader_pid(client, prefix), 60, "the web worker leading")
    scheduler = processes.scheduler("scheduler", **env)
    wait_until(lambda: client.zcard(Keys(prefix).members) >= 2, 30, "a standby")
    worker = web_worker(client, prefix, scheduler.pid)
    with request_in_progress(port):
        processes.signal("web", signal.SIGTERM)
        wait_until(lambda: leader_pid(client, prefix) == scheduler.pid, 5, "the standby leading")
        assert os.path.exists(f"/proc/{worker}"), "the worker still serves its request"
    assert processes.started["web"].wait(timeout=30) == 0
    assert processes.terminate("scheduler") == 0


def test_shards_are_not_handed_to_a_web_worker_that_is_stopping(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    """A draining web worker takes no lease: handing it a shard only leaves that shard without
    a leader until it is taken back, again and again while the worker drains. The scheduler
    must keep the shard: its epoch moves at most once (taking back what the worker gave up)."""
    env = {"REDIS_URL": redis_server.url, "SCHEDULER_SHARDS": "2"}
    scheduler = processes.scheduler("scheduler", **env)
    keys = Keys(prefix, 2, 0, True)
    shard_one = keys.in_shard(1)
    wait_until(lambda: client.get(shard_one.lease), 30, "shard 1 led")
    port = free_port()
    processes.gunicorn("web", port, workers=1, SCHEDULER_MODE="embedded", **env)
    wait_until(lambda: client.zcard(keys.members) >= 2, 60, "the web worker contending")
    members = cast(list[str], client.zrange(keys.members, 0, -1))
    [worker] = [pid_of(member) for member in members if pid_of(member) != scheduler.pid]
    with request_in_progress(port):
        processes.signal("web", signal.SIGTERM)
        time.sleep(1)
        assert os.path.exists(f"/proc/{worker}"), "the worker serves its request meanwhile"
        wait_until(lambda: lease_pid(client, shard_one.lease) == scheduler.pid, 15, "shard 1 back")
        epoch = int(client.get(shard_one.epoch) or 0)
        holders = set()
        until = time.monotonic() + 10  # several balancing rounds (one per ttl)
        while time.monotonic() < until:
            holders.add(lease_pid(client, shard_one.lease))
            time.sleep(0.05)
        moved = int(client.get(shard_one.epoch) or 0) - epoch
    assert moved == 0 and holders == {scheduler.pid}, (
        f"shard 1 was handed to the stopping worker: its epoch moved {moved} time(s), "
        f"held by {holders} (the scheduler is {scheduler.pid})"
    )
    assert processes.started["web"].wait(timeout=30) == 0


def lease_pid(client: redis.Redis, lease: str) -> int | None:
    token = client.get(lease)
    return pid_of(str(token).split("#")[0]) if token else None
