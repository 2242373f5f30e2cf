"""Scale: many stored jobs on one scheduler process (sustained rates, a burst at one instant,
a cold start), the same rates on two scheduler processes sharing two shards, Redis memory per
job, and a page of GET /jobs with 100k jobs stored.

Jobs are stored the way the API stores them (a copy of a registered job's state under a new
id, its own trigger), written straight to Redis: setting up 100k jobs takes seconds, not the
minutes a user's adds would. The scheduler finds them at its next wakeup; the ``bench-count``
job (every second) keeps it waking.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis
from apscheduler.triggers.interval import IntervalTrigger

from bench.jobs import WAKERS, bench_id
from bench.runs import ledger, percentile
from tests.support.processes import Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

TEMPLATE = "bench-count"  # a registered job whose stored state is copied (its task: a counter)


@dataclass
class Sustained:
    replicas: int  # scheduler processes, sharing as many shards
    jobs: int
    interval_s: float
    fires: int
    window_s: float
    p50_ms: float
    p99_ms: float
    missed: int
    not_run: int
    cpu: float  # CPU of each scheduler process over the window, in CPUs (mean of the replicas)
    redis_cpu: float  # CPU of the redis-server process over the window, in CPUs

    @property
    def per_second(self) -> float:
        return self.fires / self.window_s


@dataclass
class Burst:
    jobs: int
    last_start_s: float  # from the fire time to the last body's start
    started: int
    missed: int
    not_run: int


@dataclass
class ColdStart:
    what: str
    jobs: int
    first_fire_s: float  # from the process start to the first fire recorded
    rss_mb: float


@dataclass
class Footprint:
    jobs: int
    bytes_per_job: float
    page_p50_ms: float
    page_p99_ms: float
    cold_start: ColdStart


def _processes(server: RedisServer, workdir: Path, prefix: str, **env: str) -> Processes:
    return Processes(
        workdir,
        {
            "REDIS_URL": server.url,
            "KEY_PREFIX": prefix,
            "JOBS_MODULES": "bench.jobs",
            "LOG_LEVEL": "WARNING",
            "LEDGER_MAX_ENTRIES": "20",
            **env,
        },
    )


def store_jobs(
    raw: redis.Redis,
    keys: Keys,
    jobs: int,
    *,
    first: datetime,
    interval: float,
    spread: bool,
    paused: bool = False,
) -> None:
    """``jobs`` copies of the template job, every ``interval`` s from ``first`` (or, with
    ``spread``, evenly spread over the interval from there), each in its shard."""
    template = pickle.loads(raw.hget(keys.of_job(TEMPLATE).jobs, TEMPLATE))  # type: ignore[arg-type]
    template["args"] = ("bench-noop", template["args"][1])
    with raw.pipeline(transaction=False) as pipe:
        for n in range(jobs):
            at = first + timedelta(seconds=interval * n / jobs) if spread else first
            job_id = bench_id(n)
            state: dict[str, Any] = {
                **template,
                "id": job_id,
                "name": job_id,
                "trigger": IntervalTrigger(seconds=interval, start_date=at, timezone=UTC),
                "next_run_time": None if paused else at,
            }
            shard = keys.of_job(job_id)
            pipe.hset(shard.jobs, job_id, pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            if not paused:
                pipe.zadd(shard.run_times, {job_id: at.timestamp()})
            if n % 2000 == 1999:
                pipe.execute()
        pipe.execute()


def _leader_with_template(
    server: RedisServer, workdir: Path, replicas: int = 1, **env: str
) -> tuple[Processes, Keys, redis.Redis]:
    """``replicas`` scheduler processes sharing as many shards, each leading one."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    keys = Keys(prefix, replicas, 0, tagged=replicas > 1)
    woken = {keys.of_job(job_id).shard for job_id in WAKERS}
    assert woken == set(range(replicas)), f"no 1-s job wakes shards {set(range(replicas)) - woken}"
    raw = redis.Redis.from_url(server.url)
    processes = _processes(server, workdir, prefix, SCHEDULER_SHARDS=str(replicas), **env)
    for n in range(replicas):
        processes.scheduler(f"scheduler-{n}")
    wait_until(
        lambda: raw.hexists(keys.of_job(TEMPLATE).jobs, TEMPLATE), 60, "the scheduler's jobs"
    )

    def one_shard_each() -> bool:
        holders = [raw.get(shard.lease) for shard in keys.every_shard()]
        if None in holders:
            return False
        return len({text(holder).split("#")[0] for holder in holders if holder}) == replicas

    wait_until(one_shard_each, 60, "each scheduler leading a shard")
    return processes, keys, raw


def measure_sustained(
    server: RedisServer,
    workdir: Path,
    jobs: int,
    interval: float = 10,
    seconds: float = 20,
    replicas: int = 1,
) -> Sustained:
    """``jobs`` jobs every ``interval`` s, spread evenly: a steady jobs/interval fires/s, fired
    by ``replicas`` scheduler processes (as many shards)."""
    processes, keys, raw = _leader_with_template(server, workdir, replicas)
    try:
        first = datetime.fromtimestamp(time.time() + 3, UTC)
        store_jobs(raw, keys, jobs, first=first, interval=interval, spread=True)
        time.sleep(max(0.0, first.timestamp() - time.time()) + interval)  # one round to settle
        pids = [process.pid for process in processes.started.values()]
        assert server.process is not None
        pids.append(server.process.pid)
        cpu_before = [_cpu_seconds(pid) for pid in pids]
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        cpu_used = [_cpu_seconds(pid) - was for pid, was in zip(pids, cpu_before, strict=True)]
        redis_cpu = cpu_used.pop()
        time.sleep(2)  # the window's last fires end and are recorded
    finally:
        processes.close(quiet=True)
    entries = [
        e
        for e in ledger(server.client(), keys, [bench_id(n) for n in range(jobs)])
        if start <= e.scheduled_at.timestamp() < end
    ]
    late = [
        (e.started_at - e.scheduled_at).total_seconds() * 1000
        for e in entries
        if e.status == "succeeded" and e.started_at
    ] or [float("nan")]
    return Sustained(
        replicas,
        jobs,
        interval,
        sum(e.count for e in entries),
        end - start,
        percentile(late, 50),
        percentile(late, 99),
        sum(e.count for e in entries if e.status == "missed"),
        sum(e.count for e in entries if e.status != "succeeded"),
        sum(cpu_used) / len(cpu_used) / (end - start),
        redis_cpu / (end - start),
    )


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_burst(server: RedisServer, workdir: Path, jobs: int) -> Burst:
    """``jobs`` jobs due at one instant (hourly jobs, all at the same second)."""
    processes, keys, raw = _leader_with_template(server, workdir)
    try:
        at = datetime.fromtimestamp(int(time.time()) + 4, UTC)
        store_jobs(raw, keys, jobs, first=at, interval=3600, spread=False)
        ids = [bench_id(n) for n in range(jobs)]

        def all_recorded() -> bool:
            with raw.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.exists(keys.ledger(job_id))
                return bool(sum(pipe.execute()) == jobs)

        wait_until(all_recorded, 120, "every job of the burst recorded", interval=0.5)
    finally:
        processes.close(quiet=True)
    entries = ledger(server.client(), keys, ids)
    starts = [e.started_at.timestamp() for e in entries if e.started_at]
    return Burst(
        jobs,
        max(starts) - at.timestamp() if starts else float("nan"),
        len(starts),
        sum(e.count for e in entries if e.status == "missed"),
        sum(e.count for e in entries if e.status != "succeeded"),
    )


def measure_cold_start_in_code(server: RedisServer, workdir: Path, jobs: int) -> ColdStart:
    """A first start with ``jobs`` jobs defined in code and an empty store: the job sync adds
    them all; time from the process start to the first fire."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}:"
    keys = Keys(prefix)
    raw = redis.Redis.from_url(server.url)
    processes = _processes(
        server, workdir, prefix, BENCH_JOBS=str(jobs), BENCH_INTERVAL="10", BENCH_SPREAD="1"
    )
    try:
        started = time.time()
        process = processes.scheduler("scheduler")
        wait_until(lambda: raw.exists(keys.ledger(TEMPLATE)), 300, "the first fire", interval=0.1)
        first = _first_fire(server, keys, TEMPLATE)
        rss = _rss_mb(process.pid)
    finally:
        processes.close(quiet=True)
    return ColdStart(f"first start, {jobs:,} jobs in code", jobs, first - started, rss)


def measure_footprint(server: RedisServer, workdir: Path, jobs: int) -> Footprint:
    """``jobs`` stored jobs: Redis memory per job, a GET /jobs page, and a scheduler's start
    with all of them in the store (time to its first fire, its memory)."""
    processes, keys, raw = _leader_with_template(server, workdir / "store")
    try:
        before = int(raw.info("memory")["used_memory"])
        first = datetime.fromtimestamp(time.time() + 600, UTC)
        store_jobs(raw, keys, jobs, first=first, interval=3600, spread=True)
        per_job = (int(raw.info("memory")["used_memory"]) - before) / jobs
    finally:
        processes.close(quiet=True)

    restarted = _processes(server, workdir / "restart", keys.prefix)
    try:
        raw.delete(keys.ledger(TEMPLATE))
        started = time.time()
        process = restarted.scheduler("scheduler")
        wait_until(lambda: raw.exists(keys.ledger(TEMPLATE)), 300, "the first fire", interval=0.1)
        cold = ColdStart(
            f"start with {jobs:,} jobs stored",
            jobs,
            _first_fire(server, keys, TEMPLATE) - started,
            _rss_mb(process.pid),
        )
        port = free_port()
        restarted.gunicorn("api", port, workers=1)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{base}/healthz"), 60, "the api")
        middle = bench_id(jobs // 2)
        timings = []
        with httpx.Client(timeout=30) as http:
            for n in range(30):
                params = {"limit": "100", **({"after": middle} if n % 2 else {})}
                sent = time.perf_counter()
                response = http.get(f"{base}/jobs", params=params)
                timings.append((time.perf_counter() - sent) * 1000)
                assert response.status_code == 200 and len(response.json()) == 100
    finally:
        restarted.close(quiet=True)
    timings = timings[5:]  # warm up
    return Footprint(jobs, per_job, percentile(timings, 50), percentile(timings, 99), cold)


def _first_fire(server: RedisServer, keys: Keys, job_id: str) -> float:
    [entry] = ledger(server.client(), keys, [job_id])[:1]
    assert entry.finished_at is not None
    return (entry.started_at or entry.finished_at).timestamp()


def _rss_mb(pid: int) -> float:
    """Resident memory of the scheduler process (its body workers are processes of their own)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")
