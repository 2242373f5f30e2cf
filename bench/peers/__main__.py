"""``python -m bench.peers`` (``make bench-peers``): run tickonce and its alternatives side by
side on this machine and write bench/PEERS.md.

Each alternative gets a virtualenv of its own under ``.peers/`` (created, and its pinned
packages installed, on the first run). Every system runs the same jobs (every second), whose
bodies record their own start and the scheduled time the system's own API gives; the harness
reads those records. Systems take turns within each scenario, so drift hits them alike.
A benchmark, not a test: nothing fails on a figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench.peers.systems import SYSTEMS, System
from tests.support.processes import REPO, Processes
from tests.support.redis_server import RedisServer

REPORT = REPO / "bench" / "PEERS.md"


@dataclass
class Duplicates:
    system: System
    instances: int
    window_s: float
    runs: int
    fire_times: int
    expected: int

    @property
    def duplicates(self) -> int:
        return self.runs - self.fire_times

    @property
    def missed(self) -> int:
        return max(0, self.expected - self.fire_times)


def records(client: redis.Redis, key: str) -> list[dict[str, float | str]]:
    return [json.loads(item) for item in client.lrange(key, 0, -1)]


def fire_times(scheduled: list[float]) -> int:
    """Distinct fire times among scheduled times: times within half an interval of each other
    are one fire time (systems that give their enqueue time as the scheduled time enqueue a
    fire time twice a few milliseconds apart)."""
    count, last = 0, float("-inf")
    for at in sorted(scheduled):
        if at - last > 0.5:
            count += 1
            last = at
    return count


def measure_duplicates(
    server: RedisServer, workdir: Path, system: System, window: float, instances: int = 2
) -> Duplicates:
    """``instances`` instances of ``system`` running one 1-s job for ``window`` seconds."""
    key = f"peers:{uuid.uuid4().hex[:8]}"
    processes = Processes(workdir / f"{system.name}-{key[-8:]}", {})
    try:
        for n in range(instances):
            system.start(processes, n, server.url, key, jobs=1)
        time.sleep(5)  # every instance up, the first fires done
        start = time.time()
        time.sleep(window)
        end = time.time()
        time.sleep(2)  # the window's last runs recorded
    finally:
        processes.close(quiet=True)
    found = [
        float(entry["scheduled"])
        for entry in records(server.client(), key)
        if start <= float(entry["scheduled"]) < end
    ]
    return Duplicates(system, instances, window, len(found), fire_times(found), round(window))


@dataclass
class Failover:
    system: System
    gaps: list[float | None]  # s from the kill to the next run by another instance; None: > cap
    cap: float

    def show(self, gap: float | None) -> str:
        return f"> {self.cap:.0f} s" if gap is None else f"{gap:.1f} s"

    @property
    def median(self) -> str:
        ordered = sorted(self.gaps, key=lambda gap: float("inf") if gap is None else gap)
        return self.show(ordered[len(ordered) // 2])

    @property
    def worst(self) -> str:
        return self.show(None if None in self.gaps else max(g for g in self.gaps if g is not None))


def measure_failover(
    server: RedisServer, workdir: Path, system: System, tries: int, cap: float
) -> Failover:
    """Two instances; the one firing is SIGKILLed (every process of it); how long until a job
    runs again, fired by the other. ``tries`` times, each with a fresh pair."""
    gaps: list[float | None] = []
    client = server.client()
    for _ in range(tries):
        key = f"peers:{uuid.uuid4().hex[:8]}"
        processes = Processes(workdir / f"{system.name}-{key[-8:]}", {})
        try:
            for n in range(2):
                system.start(processes, n, server.url, key, jobs=1)
            deadline = time.time() + 30
            while not client.llen(key) and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(2)
            firing = str(records(client, key)[-1]["by"])
            for name in system.instance_processes(processes, firing):
                processes.signal(name, signal.SIGKILL)
            killed = time.time()
            gap = None
            while gap is None and time.time() < killed + cap:
                time.sleep(0.2)
                after = [
                    float(entry["started"])
                    for entry in records(client, key)
                    if float(entry["started"]) > killed and entry["by"] != firing
                ]
                gap = min(after) - killed if after else None
        finally:
            processes.close(quiet=True)
        gaps.append(gap)
    return Failover(system, gaps, cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", type=float, default=30.0, help="seconds per measurement")
    parser.add_argument("--tries", type=int, default=3, help="kills per system")
    parser.add_argument("--cap", type=float, default=60.0, help="longest gap waited for")
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    started = time.monotonic()
    for system in SYSTEMS:
        system.install()
    with tempfile.TemporaryDirectory(prefix="tickonce-peers-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir / "redis").start()
        try:
            print("==> duplicate and missed runs, two instances", flush=True)
            duplicates = [
                measure_duplicates(server, workdir, system, args.window) for system in SYSTEMS
            ]
            print("==> failover after SIGKILL of the firing instance", flush=True)
            failovers = [
                measure_failover(server, workdir, system, args.tries, args.cap)
                for system in SYSTEMS
            ]
        finally:
            server.stop()
    report = render(duplicates, failovers, time.monotonic() - started)
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}")


def commit() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def render(duplicates: list[Duplicates], failovers: list[Failover], took: float) -> str:
    return "\n".join(
        [
            "# tickonce and its alternatives",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on one machine "
            f"(Python {platform.python_version()}, commit {commit()}), in {took / 60:.1f} min "
            "by `make bench-peers`. Redis 7 (`redis-server`) on the same machine for all. "
            "Not yet measured (issue 12 goes on): failover after SIGTERM, fire lateness "
            "(p50/p99, 1 and 100 jobs due together), and APScheduler 4 (SQL data store).",
            "",
            "What each system is, and what this harness sees of it:",
            "- *naive recipe*: APScheduler 3's AsyncIOScheduler started in every process (as "
            "in FastAPI's lifespan under gunicorn): every process fires every job.",
            "- *tickonce*: two scheduler processes, a leader and a hot standby (a lease in "
            "Redis with a fencing epoch, a claim per fire); the scheduled time is the one "
            "tickonce gives the body.",
            "- *arq cron*: every worker schedules the cron jobs; a job id per fire time lets "
            "only one enqueue it; the scheduled time is the job's score (its defer-until time). "
            "Workers poll every 0.5 s by default.",
            "- *RQ cron*: an `rq cron` process and an `rq worker` per instance; each cron process "
            "enqueues every job. RQ gives a job no scheduled time: its enqueue time stands for "
            "it.",
            "- *Celery beat + RedBeat*: a beat and a worker per instance; the beat holding "
            "RedBeat's lock in Redis sends the tasks, the other waits for the lock. Celery gives "
            "a task no scheduled time: the beat stamps the time it sent it (a message header).",
            "",
            "## Duplicate and missed runs",
            "Two instances of each system (two processes started the way its docs deploy "
            "it), one job every second, measured over the window after a 5-s start.",
            "",
            "| system | setting | instances | window | runs | fire times | duplicates | missed |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {d.system.title} | {d.system.setting} | {d.instances} | "
                f"{d.window_s:.0f} s | {d.runs} | {d.fire_times} | {d.duplicates} | "
                f"{d.missed} |"
                for d in duplicates
            ),
            "",
            "## Failover after SIGKILL",
            "Two instances; every process of the one firing (the one that fired the last "
            "recorded run) is SIGKILLed; the gap is from the kill to the first run fired by "
            "the other instance (for systems where every instance fires, that is the next "
            "second). Each try starts a fresh pair.",
            "",
            "| system | setting | tries | median | max |",
            "| --- | --- | ---: | ---: | ---: |",
            *(
                f"| {f.system.title} | {f.system.setting} | {len(f.gaps)} | {f.median} | "
                f"{f.worst} |"
                for f in failovers
            ),
            "",
            "## Versions",
            *(
                f"- {title}: {versions}"
                for title, versions in dict.fromkeys(
                    (system.title, system.versions) for system in SYSTEMS
                )
            ),
            "",
        ]
    )


if __name__ == "__main__":
    main()
