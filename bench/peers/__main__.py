"""``python -m bench.peers`` (``make bench-peers``): run tickonce and its alternatives side by
side on this machine and write bench/PEERS.md.

Each alternative gets a virtualenv of its own under ``.peers/`` (created, and its pinned
packages installed, on the first run); Redis and PostgreSQL come from Debian's packages
(installed when missing). Every system runs the same jobs (every second), whose bodies record
their own start and the scheduled time the system's own API gives; the harness reads those
records. Systems take turns within each scenario, and failover tries go round all systems
once per try, so drift hits them alike. A benchmark, not a test: nothing fails on a figure.
"""

from __future__ import annotations

import argparse
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from bench.peers.machine import debian_packages
from bench.peers.measure import (
    ColdStarts,
    Failover,
    Takeover,
    cold_start_exits,
    failover_gap,
    measure_runs,
)
from bench.peers.postgres import Postgres
from bench.peers.report import render
from bench.peers.systems import SYSTEMS, Backends, System
from tests.support.processes import REPO
from tests.support.redis_server import RedisServer

REPORT = REPO / "bench" / "PEERS.md"


def measure_cold_starts(
    backends: Backends, workdir: Path, systems: list[System], args: argparse.Namespace
) -> list[ColdStarts]:
    """``args.tries`` times each system, two instances started together on fresh state."""
    rows = [ColdStarts(system, [False] * args.tries) for system in systems]
    with ThreadPoolExecutor(args.parallel) as pool:
        tries = {
            pool.submit(cold_start_exits, backends, workdir, row.system, 8.0): (row, n)
            for n in range(args.tries)
            for row in rows
        }
        for done in as_completed(tries):
            row, n = tries[done]
            row.exited[n] = done.result()
    return rows


def measure_failovers(
    backends: Backends,
    workdir: Path,
    systems: list[System],
    signum: signal.Signals,
    args: argparse.Namespace,
) -> list[Failover]:
    """``args.tries`` tries of each system, going round all systems once per try, the signal
    landing further into the second at each try; ``args.parallel`` tries at a time (each on a
    Redis database of its own): a try is mostly waiting for a takeover."""
    failovers = [
        Failover(system, signum.name, args.cap, [Takeover(None, None)] * args.tries)
        for system in systems
    ]
    with ThreadPoolExecutor(args.parallel) as pool:
        tries = {
            pool.submit(
                failover_gap,
                backends,
                workdir,
                failover.system,
                signum,
                0.01 + n / args.tries,
                args.cap,
            ): (failover, n)
            for n in range(args.tries)
            for failover in failovers
        }
        for done in as_completed(tries):
            failover, n = tries[done]
            failover.tries[n] = done.result()
    return failovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--window", type=float, default=30.0, help="s of the 1-job window")
    parser.add_argument(
        "--burst-window", type=float, default=15.0, help="s of the 100-job one (5-s multiple)"
    )
    parser.add_argument("--tries", type=int, default=3, help="signals per system and kind")
    parser.add_argument("--cap", type=float, default=60.0, help="longest gap waited for (s)")
    parser.add_argument("--parallel", type=int, default=3, help="tries at once")
    parser.add_argument("--only", help="run only the systems whose name is this (a trial run)")
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    started = time.monotonic()
    systems = [system for system in SYSTEMS if args.only in (None, system.name)]
    debian_packages("redis-server", "postgresql")
    for system in systems:
        system.install()
    with tempfile.TemporaryDirectory(prefix="tickonce-peers-") as tmp:
        workdir = Path(tmp)
        backends = Backends(RedisServer(workdir / "redis", extra=Backends.DATABASES), Postgres())
        backends.redis.start()
        try:
            backends.postgres.start()
            print("==> one 1-s job, two instances", flush=True)
            single = [measure_runs(backends, workdir, s, 1, 1, args.window) for s in systems]
            print("==> 100 jobs due together every 5 s, two instances", flush=True)
            burst = [measure_runs(backends, workdir, s, 100, 5, args.burst_window) for s in systems]
            print("==> two instances started together on fresh state", flush=True)
            cold = measure_cold_starts(backends, workdir, systems, args)
            failovers: list[Failover] = []
            for signum in (signal.SIGKILL, signal.SIGTERM):
                print(f"==> failover after {signum.name} of the firing instance", flush=True)
                failovers += measure_failovers(backends, workdir, systems, signum, args)
            postgres_version = backends.postgres.version()
        finally:
            backends.postgres.stop()
            backends.redis.stop()
    took = time.monotonic() - started
    report = render(single, burst, cold, failovers, args, postgres_version, took)
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
