"""Scheduler measurements on real processes: fire lateness, failover, duplicates vs naive."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.jobs import bench_id
from tests.support.cluster import pid_of
from tests.support.processes import BIN, Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._firing.record import RunRecord
from tickonce._storage.keys import Keys


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def ledger(client: redis.Redis, keys: Keys, job_ids: list[str]) -> list[RunRecord]:
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.xrange(keys.ledger(job_id))
    return [RunRecord.from_fields(fields) for entries in pipe.execute() for _, fields in entries]


@dataclass
class Lateness:
    jobs: int
    fires: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    not_run: int
    plain: bool = False  # plain APScheduler in one process, not tickonce


def measure_lateness(
    server: RedisServer, workdir: Path, jobs: int, seconds: float = 10, **env: str
) -> Lateness:
    """One scheduler process, ``jobs`` 1-s jobs all due at the same instant each second
    (``env``: more settings for it, such as CLAIM_MIN_REPLICAS)."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    processes = Processes(
        workdir,
        {
            "REDIS_URL": server.url,
            "KEY_PREFIX": prefix,
            "JOBS_MODULES": "bench.jobs",
            "BENCH_JOBS": str(jobs),
            "LOG_LEVEL": "WARNING",
            "LEDGER_MAX_ENTRIES": "100",
            **env,
        },
    )
    client = server.client()
    keys = Keys(prefix)
    try:
        processes.scheduler("scheduler")
        wait_until(lambda: client.exists(keys.ledger(bench_id(0))), 60, "the first fires")
        time.sleep(3)  # warm up
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        processes.terminate("scheduler")
    finally:
        processes.close(quiet=True)
    entries = [
        e
        for e in ledger(client, keys, [bench_id(n) for n in range(jobs)])
        if start <= e.scheduled_at.timestamp() < end
    ]
    late = [
        (e.started_at - e.scheduled_at).total_seconds() * 1000
        for e in entries
        if e.status == "succeeded" and e.started_at
    ]
    return Lateness(
        jobs,
        len(entries),
        percentile(late, 50),
        percentile(late, 99),
        max(late),
        sum(e.status != "succeeded" for e in entries),
    )


def measure_plain(jobs: int, seconds: float = 10) -> Lateness:
    """The same load on plain APScheduler in one process (bench/plain.py)."""
    output = subprocess.run(
        [sys.executable, "-m", "bench.plain", str(jobs), str(seconds)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    late = [float(value) for value in output.split()]
    return Lateness(
        jobs, len(late), percentile(late, 50), percentile(late, 99), max(late), 0, plain=True
    )


@dataclass
class Failover:
    ttl: float
    lease_taken_s: list[float]
    first_fire_s: list[float]


def measure_failover(server: RedisServer, workdir: Path, ttl: float, trials: int = 5) -> Failover:
    """SIGKILL the leader; time until a standby holds the lease and until it fires."""
    outcomes = [
        _failover_trial(server, workdir / f"failover-{ttl:g}-{n}", ttl) for n in range(trials)
    ]
    return Failover(ttl, [taken for taken, _ in outcomes], [fired for _, fired in outcomes])


def _failover_trial(server: RedisServer, workdir: Path, ttl: float) -> tuple[float, float]:
    client = server.client()
    prefix = f"bench-fo-{uuid.uuid4().hex[:6]}:"
    keys = Keys(prefix)
    processes = Processes(
        workdir,
        {
            "REDIS_URL": server.url,
            "KEY_PREFIX": prefix,
            "JOBS_MODULES": "bench.jobs",
            "LEASE_TTL_SECONDS": str(ttl),
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        processes.scheduler("a")
        processes.scheduler("b")
        wait_until(lambda: client.xlen(keys.ledger("bench-count")) >= 2, 30, "runs")
        time.sleep(0.3)
        holder = str(client.get(keys.lease)).split("#")[0]
        leader = processes.by_pid(pid_of(holder))
        assert leader is not None
        killed_at = time.time()
        processes.signal(leader, signal.SIGKILL)

        def new_holder() -> bool:
            token = client.get(keys.lease)
            return bool(token) and not str(token).startswith(holder)

        wait_until(new_holder, 3 * ttl + 10, "a new lease holder", interval=0.005)
        taken = time.time() - killed_at

        def first_fire() -> float | None:
            starts = [
                e.started_at.timestamp()
                for e in ledger(client, keys, ["bench-count"])
                if e.runner != holder and e.started_at and e.started_at.timestamp() > killed_at
            ]
            return min(starts) if starts else None

        fire = wait_until(first_fire, 3 * ttl + 10, "the standby's first fire")
        assert fire is not None
        return taken, fire - killed_at
    finally:
        processes.close(quiet=True)


@dataclass
class Duplicates:
    setup: str
    seconds: float
    runs: int
    expected: int

    @property
    def duplicates(self) -> int:
        return max(0, self.runs - self.expected)


def measure_duplicates(
    server: RedisServer, workdir: Path, workers: int = 4, seconds: int = 10
) -> list[Duplicates]:
    """The same 1-s job under ``gunicorn -w 4``: the naive recipe vs tickonce embedded."""
    return [
        _count_runs(server, workdir / f"dup-{setup}", setup, workers, seconds)
        for setup in ("naive", "tickonce")
    ]


def _count_runs(
    server: RedisServer, workdir: Path, setup: str, workers: int, seconds: int
) -> Duplicates:
    client = server.client()
    prefix = f"bench-dup-{uuid.uuid4().hex[:6]}:"
    counter = Keys(prefix).example("bench-count") if setup == "tickonce" else f"{prefix}naive"
    processes = Processes(
        workdir,
        {
            "REDIS_URL": server.url,
            "KEY_PREFIX": prefix,
            "NAIVE_COUNTER_KEY": counter,
            "JOBS_MODULES": "bench.jobs",
            "SCHEDULER_MODE": "embedded",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        if setup == "naive":
            processes.start(
                "gunicorn",
                [
                    str(BIN / "gunicorn"),
                    "bench.naive_app:app",
                    "-k",
                    "uvicorn_worker.UvicornWorker",
                    "-w",
                    str(workers),
                    "-b",
                    f"127.0.0.1:{free_port()}",
                ],
            )
        else:
            processes.gunicorn("gunicorn", free_port(), workers=workers)
        wait_until(lambda: int(client.get(counter) or 0) >= 2, 60, f"{setup} runs")
        time.sleep(1.5)
        before = int(client.get(counter) or 0)
        time.sleep(seconds)
        after = int(client.get(counter) or 0)
    finally:
        processes.close(quiet=True)
    return Duplicates(f"{setup} (gunicorn -w {workers})", seconds, after - before, seconds)


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


@dataclass
class DurableCost:
    """Lateness with claims acknowledged by ``min_replicas`` replicas before bodies start."""

    min_replicas: int
    lateness: Lateness


def measure_durable_claims(
    server: RedisServer, workdir: Path, jobs: list[int], seconds: float = 10
) -> list[DurableCost]:
    """The lateness rows again with one replica attached to ``server``: CLAIM_MIN_REPLICAS 0
    and 1 in turn (interleaved per job count), so the difference is the wait for the replica."""
    replica = server.replica(workdir / "replica")
    try:
        rows = []
        for n in jobs:
            for wanted in (0, 1):
                late = measure_lateness(
                    server,
                    workdir / f"durable-{n}-{wanted}",
                    n,
                    seconds,
                    CLAIM_MIN_REPLICAS=str(wanted),
                )
                rows.append(DurableCost(wanted, late))
        return rows
    finally:
        replica.stop()
