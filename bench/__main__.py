"""``python -m bench`` (or ``make bench``): measure on this machine, write bench/REPORT.md.

Needs redis-server, and for the API figures Docker with Compose and wrk (the image variables
of docker-compose.yml apply, e.g. the stand-ins of deploy/airgap/). A benchmark, not a test:
it measures and reports; the targets are compared in the report, nothing fails on them.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.api_load import ApiLoad, measure_api
from bench.host import command_output, redis_version
from bench.roundtrips import RoundTrips, measure_round_trips
from bench.runs import (
    Duplicates,
    DurableCost,
    Failover,
    Lateness,
    mean,
    measure_duplicates,
    measure_durable_claims,
    measure_failover,
    measure_lateness,
    measure_plain,
)
from bench.scale import (
    Burst,
    ColdStart,
    Footprint,
    Sustained,
    measure_burst,
    measure_cold_start_in_code,
    measure_footprint,
    measure_sustained,
)
from tests.support.processes import REPO
from tests.support.redis_server import RedisServer

REPORT = REPO / "bench" / "REPORT.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter windows (rougher numbers)")
    parser.add_argument("--output", type=Path, default=REPORT)
    args = parser.parse_args()
    window = 4 if args.quick else 10
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tickonce-bench-") as tmp:
        workdir = Path(tmp)
        server = RedisServer(workdir / "redis").start()
        try:
            step("fire lateness (and plain APScheduler in one process, for comparison)")
            lateness = [
                measure_lateness(server, workdir / f"late-{n}", n, window) for n in (1, 100, 1000)
            ]
            lateness.insert(2, measure_plain(100, window))
            step("durable claims: CLAIM_MIN_REPLICAS 0 and 1 with a replica attached")
            durable = measure_durable_claims(server, workdir, [1, 100], window)
            step("scale: sustained rates, a burst, cold starts, 100k jobs stored")
            sustained = [
                measure_sustained(server, workdir / f"rate-{n}", n, 10, 2 * window)
                for n in (1_000, 10_000, 20_000)
            ]
            step("scale: one scheduler against two sharing two shards, interleaved")
            by_replicas = [
                measure_sustained(server, workdir / f"replicas-{r}-{n}", n, 10, 2 * window, r)
                for n in (20_000, 40_000)
                for r in (1, 2)
            ]
            burst = measure_burst(server, workdir / "burst", 10_000)
            cold = measure_cold_start_in_code(server, workdir / "cold", 20_000)
            footprint = measure_footprint(server, workdir / "footprint", 100_000)
            step("round trips per fire")
            trips = [measure_round_trips(server, n, window) for n in (1, 100)]
            step("failover after SIGKILL")
            failovers = [measure_failover(server, workdir, ttl, trials=5) for ttl in (1.0, 5.0)]
            step("duplicate runs: naive recipe vs tickonce")
            duplicates = measure_duplicates(server, workdir, workers=4, seconds=window)
        finally:
            server.stop()
        step("API throughput through the load balancer")
        api = measure_api(workdir, [(1, 1), (1, 4), (3, 1), (3, 4)], seconds=window)
    scale = Scale(sustained, by_replicas, burst, [cold, footprint.cold_start], footprint)
    report = render(
        lateness, durable, scale, trips, failovers, duplicates, api, time.monotonic() - started
    )
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}")


def step(what: str) -> None:
    print(f"==> {what}", flush=True)


@dataclass
class Scale:
    sustained: list[Sustained]
    by_replicas: list[Sustained]
    burst: Burst
    cold_starts: list[ColdStart]
    footprint: Footprint


def render(
    lateness: list[Lateness],
    durable: list[DurableCost],
    scale: Scale,
    trips: list[RoundTrips],
    failovers: list[Failover],
    duplicates: list[Duplicates],
    api: list[ApiLoad],
    took: float,
) -> str:
    cpus = command_output("nproc")
    lines = [
        "# tickonce benchmark",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on one machine ({cpus} CPUs, "
        f"Python {platform.python_version()}, Redis {redis_version()},"
        f" commit {command_output('git', '-C', str(REPO), 'rev-parse', '--short', 'HEAD')}), "
        f"in {took / 60:.1f} min by `make bench`. Everything ran on this one machine: the "
        "load generator shares the CPUs with what it measures.",
        "",
        "## Fire lateness (actual start minus scheduled time)",
        "One scheduler process; N jobs every second, all due at the same instant (the worst "
        "case). Ledger times have millisecond resolution. *Plain APScheduler*: the same no-op "
        "bodies on APScheduler 3's AsyncIOScheduler in one process, no Redis, no claims, "
        "bodies on its own event loop (`bench/plain.py`), in the same run. Target: p99 within "
        "2 ms of plain APScheduler at 100 jobs.",
        "",
        "| setup | jobs | fires measured | p50 | p99 | max | not run |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {'plain APScheduler' if r.plain else 'tickonce'} | {r.jobs} | {r.fires} | "
            f"{r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.max_ms:.1f} ms | {r.not_run} |"
            for r in lateness
        ),
        "",
        "## Durable claims (CLAIM_MIN_REPLICAS)",
        "The same lateness rows with one replica attached to Redis (a second redis-server on "
        "this machine): claims not waited for (0), and claims acknowledged by the replica "
        "(`WAIT 1`, on the claim's own connection) before any body of the group starts (1), "
        "interleaved. The difference is the cost of durable claims per fire.",
        "",
        "| CLAIM_MIN_REPLICAS | jobs | fires measured | p50 | p99 | not run |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.min_replicas} | {r.lateness.jobs} | {r.lateness.fires} | "
            f"{r.lateness.p50_ms:.1f} ms | {r.lateness.p99_ms:.1f} ms | {r.lateness.not_run} |"
            for r in durable
        ),
        "",
        "## Scale: one scheduler process",
        "Jobs stored as the API stores them. *Sustained*: N jobs every 10 s, spread evenly "
        f"over the interval, measured over {scale.sustained[0].window_s:.0f} s after one round "
        "to settle. Targets: 2,000 fires/s with 0 missed and p99 at most 100 ms.",
        "",
        "| jobs | fires/s | p50 | p99 | missed | not run | scheduler CPU | Redis CPU |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.jobs:,} | {r.per_second:,.0f} | {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms | "
            f"{r.missed} | {r.not_run} | {r.cpu:.0%} | {r.redis_cpu:.0%} |"
            for r in scale.sustained
        ),
        "",
        "*Schedulers by shard*: the same sustained load fired by one scheduler process "
        "(`SCHEDULER_SHARDS=1`) and by two sharing two shards (`SCHEDULER_SHARDS=2`, each "
        "leading one), measured one after the other. This machine's CPUs are shared by Redis, "
        "every scheduler process and their body workers. CPU: each scheduler's main process "
        "and the redis-server process over the window, in CPUs (100 % is one CPU).",
        "",
        "| schedulers | jobs | fires/s | p50 | p99 | missed | not run | CPU per scheduler "
        "| Redis CPU |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {r.replicas} | {r.jobs:,} | {r.per_second:,.0f} | {r.p50_ms:.0f} ms | "
            f"{r.p99_ms:.0f} ms | {r.missed} | {r.not_run} | {r.cpu:.0%} | {r.redis_cpu:.0%} |"
            for r in scale.by_replicas
        ),
        "",
        f"*Burst*: {scale.burst.jobs:,} jobs due at the same instant. Target: every body "
        "started within 5 s, 0 missed.",
        "",
        "| jobs | last body started after | bodies started | missed | not run |",
        "| ---: | ---: | ---: | ---: | ---: |",
        f"| {scale.burst.jobs:,} | {scale.burst.last_start_s:.1f} s | {scale.burst.started:,} | "
        f"{scale.burst.missed} | {scale.burst.not_run} |",
        "",
        "*Cold start*: from starting the scheduler process to its first fire; its memory "
        "(RSS of the scheduler process; body workers are processes of their own). Target: "
        "first fire within 30 s with 20k jobs.",
        "",
        "| start | first fire after | scheduler RSS |",
        "| --- | ---: | ---: |",
        *(f"| {c.what} | {c.first_fire_s:.1f} s | {c.rss_mb:.0f} MB |" for c in scale.cold_starts),
        "",
        f"*{scale.footprint.jobs:,} jobs stored*: Redis memory "
        f"{scale.footprint.bytes_per_job:.0f} bytes per job (state, next run time; the ledger "
        "grows with runs, capped per job); `GET /jobs?limit=100` (first and middle pages, one "
        f"worker): p50 {scale.footprint.page_p50_ms:.0f} ms, p99 "
        f"{scale.footprint.page_p99_ms:.0f} ms. Target: a 100-job page within 200 ms.",
        "",
        "## Redis round trips per fire",
        "Counted on the client (each request write of redis-py; a pipeline or a Lua call is "
        "one). *Marginal* leaves out what an idle leader spends anyway (lease renewal, "
        "heartbeat, command polling: "
        f"{trips[0].idle_per_second:.1f} round trips/s). Target: at most 2 per fire on the hot "
        "path.",
        "",
        "| jobs | fires | round trips | per fire | marginal per fire |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {t.jobs} | {t.fires} | {t.total} | {t.per_fire:.2f} | {t.marginal_per_fire:.2f} |"
            for t in trips
        ),
        "",
        "## Failover after SIGKILL of the leader (5 trials each)",
        "Two scheduler processes; the leader is killed; *lease taken*: until the standby holds "
        "the lease; *first fire*: until it runs a 1-s job. Target: within ttl + 1 s.",
        "",
        "| ttl | lease taken (mean / max) | first fire (mean / max) | within ttl + 1 s |",
        "| ---: | ---: | ---: | :---: |",
        *(
            f"| {f.ttl:g} s | {mean(f.lease_taken_s):.2f} / {max(f.lease_taken_s):.2f} s | "
            f"{mean(f.first_fire_s):.2f} / {max(f.first_fire_s):.2f} s | "
            f"{'yes' if max(f.first_fire_s) <= f.ttl + 1 else 'no'} |"
            for f in failovers
        ),
        "",
        "## Duplicate runs: the naive recipe vs tickonce",
        "The same 1-s job under `gunicorn -w 4`: the naive recipe starts an AsyncIOScheduler "
        "in FastAPI's lifespan (`bench/naive_app.py`); tickonce runs embedded in the same 4 "
        "workers. Target: zero duplicates.",
        "",
        "| setup | window | runs | expected | duplicates |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {d.setup} | {d.seconds:g} s | {d.runs} | {d.expected} | {d.duplicates} |"
            for d in duplicates
        ),
        "",
        "## API: GET /jobs through the load balancer",
        "The compose stack (HAProxy in front of the api replicas, 2 schedulers, Redis), "
        "`wrk -t2 -c32`.",
        "",
        "| api replicas | workers each | requests/s | p99 latency | errors |",
        "| ---: | ---: | ---: | ---: | ---: |",
        *(
            f"| {a.replicas} | {a.workers} | {a.requests_per_second:.0f} | {a.p99_ms:.1f} ms | "
            f"{a.errors} |"
            for a in api
        ),
        "",
        "Reproduce: `make bench` (see docs/performance.md).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
