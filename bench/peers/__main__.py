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
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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


T = TypeVar("T")


def rounds(
    systems: list[System], args: argparse.Namespace, trial: Callable[[System, int], T]
) -> list[list[T]]:
    """``trial(system, n)`` for ``n`` in ``range(args.tries)``, going round all systems once per
    try, ``args.parallel`` trials at once (each on a Redis database of its own: a trial is
    mostly waiting); each system's results in try order."""
    pool = ThreadPoolExecutor(args.parallel)
    try:
        futures = {
            (index, n): pool.submit(trial, system, n)
            for n in range(args.tries)
            for index, system in enumerate(systems)
        }
        return [
            [futures[index, n].result() for n in range(args.tries)] for index in range(len(systems))
        ]
    finally:  # stopped or failed: the trials under way end (each bounded), no more start
        pool.shutdown(cancel_futures=True)


def measure_cold_starts(
    backends: Backends, workdir: Path, systems: list[System], args: argparse.Namespace
) -> list[ColdStarts]:
    """``args.tries`` times each system, two instances started together on fresh state."""
    exits = rounds(systems, args, lambda s, _: cold_start_exits(backends, workdir, s, 8.0))
    return [ColdStarts(system, exited) for system, exited in zip(systems, exits, strict=True)]


def measure_failovers(
    backends: Backends,
    workdir: Path,
    systems: list[System],
    signum: signal.Signals,
    args: argparse.Namespace,
) -> list[Failover]:
    """``args.tries`` tries of each system, the signal landing further into the second at each
    try."""

    def trial(system: System, n: int) -> Takeover:
        offset = 0.01 + n / args.tries
        return failover_gap(backends, workdir, system, signum, offset, args.cap)

    takeovers = rounds(systems, args, trial)
    return [
        Failover(system, signum.name, args.cap, tries)
        for system, tries in zip(systems, takeovers, strict=True)
    ]


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
    # SIGTERM (a stopped make, a closed terminal) stops it as Ctrl-C does: every process it
    # started, Redis and PostgreSQL included, is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    started = time.monotonic()
    systems = [system for system in SYSTEMS if args.only in (None, system.name)]
    debian_packages("redis-server", "postgresql")
    # One install a virtualenv (several systems share one), all at once: mostly downloads.
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(System.install, {system.venv: system for system in systems}.values()))
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
