"""bench/PEERS.md from one run of the peer benchmark: the tables, where tickonce loses (worked
out from the figures, not written by hand), and what the harness cannot see."""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from bench.host import command_output, redis_version
from bench.peers.measure import ColdStarts, Failover, Runs
from bench.peers.systems import System

SYSTEM_NOTES = [
    "- *naive recipe*: APScheduler 3's AsyncIOScheduler started in every process (what "
    "FastAPI's lifespan does in every gunicorn worker); two processes here. Every process fires "
    "every job: there is no standby to fail over to, and nothing to tune.",
    "- *tickonce*: two `python -m services.scheduler` processes, a leader and a hot standby (a "
    "lease in Redis with a fencing epoch, a claim per fire, bodies in worker processes); the "
    "scheduled time is `current_run().scheduled_at`. `LEASE_TTL_SECONDS` is its failover knob "
    "(docs/configuration.md: failover after a crash takes about ttl + ttl/10). A leader "
    "killed while a body runs, or just after, before the body's running slot is given back, "
    "leaves that slot held: the job's next run waits until it expires, 3 ttl (15 s by default), "
    "and the fires meanwhile are recorded `skipped: max_instances` (docs/guarantees.md); a trial "
    "kill 10 ms after a fire time, while this harness was written, waited 15 s.",
    "- *arq cron*: two `arq` workers; every worker schedules the cron jobs and a job id per fire "
    "time lets only one enqueue it; the scheduled time is the job's score (its defer-until "
    "time). No standby (every worker schedules), so no failover setting.",
    "- *RQ cron* (beta in RQ): an `rq cron` process and an `rq worker` per instance; every "
    "cron process enqueues every job, and RQ's docs describe one cron process, not two. RQ "
    "gives a job no scheduled time: its enqueue time stands for it.",
    "- *Celery beat + RedBeat*: a beat and a worker per instance; the beat holding RedBeat's "
    "lock in Redis sends the tasks, the other waits for the lock. Celery gives a task no "
    "scheduled time: the beat stamps the time it sent it (a message header). RedBeat's docs "
    "name `redbeat_lock_timeout` and `beat_max_loop_interval` as what decides how soon a "
    "standby beat takes over.",
    "- *APScheduler 4* (pre-release): two `AsyncScheduler`s (role `both`: each schedules and "
    "runs jobs) on one PostgreSQL data store (SQLAlchemy + asyncpg) with a Redis event "
    "broker; the data store leases each due schedule and each job to one scheduler; the "
    "scheduled time is `current_job.get().scheduled_fire_time`. Its docs recommend no "
    "failover setting; `lease_duration` (default 30 s) is how long a dead scheduler's leases "
    "block the others. Started together on a new database, two instances race to create its "
    "schema and one may exit (measured below).",
]

CAVEATS = [
    "- One machine, one run: every system, Redis, PostgreSQL and this harness share its CPUs, "
    "and the figures move from run to run (tails most). Systems take turns within each "
    "scenario and each failover try goes round all systems once, so drift hits them alike.",
    "- Lateness is each body's own start minus the scheduled time its system gives. Where a "
    "system gives none (RQ, Celery: marked †), the time it enqueued or sent the run stands for "
    "it, so the scheduler's own delay before that is not seen: † lateness is a lower bound and "
    "is left out of the comparisons above. Their runs cannot be told apart by fire time "
    "either: † duplicates are the runs beyond the fire times in the window and † misses the "
    "fire times beyond the runs (a duplicate and a miss of the same job cancel out).",
    "- The job bodies do the same thing everywhere (one Redis RPUSH of their record) but run "
    "where each system runs bodies: tickonce in worker processes (a body that blocks cannot "
    "delay firing or the lease), arq and APScheduler on the scheduling event loop, RQ and "
    "Celery in worker processes fed through a Redis queue.",
    "- Failover is measured from the signal to the first run started by the other instance. "
    "Systems where every instance fires (naive, arq, RQ) show the next fire time of the "
    "survivor, not a takeover. Each try starts a fresh pair of instances; the signal lands at "
    "a different point of the second in each try (the first just after a fire time).",
    "- What the harness cannot see: behaviour under Redis or network faults, long-running "
    "bodies, many schedulers, or persistence; durability is each system's default (Redis "
    "without persistence, PostgreSQL with fsync on).",
    "- These systems were designed for different things: Celery and RQ are task queues with a "
    "scheduler beside them, arq is an asyncio task queue whose cron is a convenience, "
    "APScheduler 4 is a general scheduler still in pre-release; tickonce does only periodic "
    "jobs behind a scaled service, and keeps APScheduler 3's API.",
]


def dagger(runs: Runs) -> str:
    return "" if runs.system.gives_scheduled_time else " †"


def commit() -> str:
    """HEAD, and whether the tree had changes not in it."""
    head = command_output("git", "rev-parse", "--short", "HEAD") or "unknown"
    changed = command_output("git", "status", "--porcelain", "--untracked-files=no")
    return f"{head} (with uncommitted changes)" if changed else head


def lateness(runs: Runs) -> str:
    return f"{runs.lateness_ms(0.5):.0f} / {runs.lateness_ms(0.99):.0f} ms{dagger(runs)}"


def table(
    columns: Sequence[str], rows: Iterable[tuple[System, Sequence[object]]], *, notes: bool = False
) -> list[str]:
    """A Markdown table, a row a system and setting: their names, then ``columns`` of figures
    (right-aligned; with ``notes`` the last column is words, left-aligned)."""
    aligns = ["---:"] * len(columns)
    if notes:
        aligns[-1] = "---"
    return [
        "| " + " | ".join(["system", "setting", *columns]) + " |",
        "| " + " | ".join(["---", "---", *aligns]) + " |",
        *(
            "| " + " | ".join([system.title, system.setting, *map(str, cells)]) + " |"
            for system, cells in rows
        ),
    ]


def runs_table(rows: list[Runs]) -> list[str]:
    return table(
        ["fire times", "runs", "duplicates", "missed", "lateness p50 / p99"],
        (
            (
                r.system,
                [
                    r.expected,
                    r.runs,
                    f"{r.duplicates}{dagger(r)}",
                    f"{r.missed}{dagger(r)}",
                    lateness(r),
                ],
            )
            for r in rows
        ),
    )


def summary_table(
    single: list[Runs], burst: list[Runs], cold: list[ColdStarts], failovers: list[Failover]
) -> list[str]:
    """One row a system and setting: the figures users ask about first (docs/peers.md)."""

    def failover(system: System, kind: str) -> str:
        f = next(f for f in failovers if f.system is system and f.signal == kind)
        return f"{f.median} ({f.worst})"

    return table(
        [
            "1-s job, 30 s: duplicates / missed",
            "lateness p50 / p99: 1 job; 100 due together",
            "failover, median (max): SIGKILL; SIGTERM",
            "started together: an instance exited",
        ],
        (
            (
                one.system,
                [
                    f"{one.duplicates} / {one.missed}{dagger(one)}",
                    f"{lateness(one)}; {lateness(many)}",
                    f"{failover(one.system, 'SIGKILL')}; {failover(one.system, 'SIGTERM')}",
                    exits(c),
                ],
            )
            for one, many, c in zip(single, burst, cold, strict=True)
        ),
    )


def failover_table(rows: list[Failover]) -> list[str]:
    return table(
        ["tries", "median", "max", "each try (fire times lost)"],
        (
            (f.system, [len(f.tries), f.median, f.worst, ", ".join(map(f.describe, f.tries))])
            for f in rows
        ),
        notes=True,
    )


def exits(cold: ColdStarts) -> str:
    return f"{sum(cold.exited)} of {len(cold.exited)}"


def beaten(
    what: str,
    rows: Sequence[tuple[System, float]],
    unit: Callable[[float], str],
    excuse: Callable[[System], str] = lambda _: "",
) -> list[str]:
    """Lines naming every row that beats tickonce with its defaults on ``what`` (lower is
    better), with both figures."""
    ours = next((value for system, value in rows if is_tickonce_defaults(system)), None)
    if ours is None:
        return []
    return [
        f"- {what}: {system.label} {unit(value)} against tickonce's {unit(ours)}{excuse(system)}."
        for system, value in rows
        if system.name != "tickonce" and value < ours
    ]


def is_tickonce_defaults(system: System) -> bool:
    return system.name == "tickonce" and system.setting == "defaults"


def losses(single: list[Runs], burst: list[Runs], failovers: list[Failover]) -> list[str]:
    """Where tickonce (defaults) is beaten in this run, figure by figure."""

    def ms(value: float) -> str:
        return f"{value:.0f} ms"

    def seconds(value: float) -> str:
        return f"{value:.1f} s"

    def honest(rows: list[Runs], q: float) -> list[tuple[System, float]]:
        return [(r.system, r.lateness_ms(q)) for r in rows if r.system.gives_scheduled_time]

    def correctness(rows: list[Runs]) -> Callable[[System], str]:
        by_label = {r.system.label: r for r in rows}

        def excuse(system: System) -> str:
            r = by_label[system.label]
            bad = [f"{r.duplicates} duplicate runs"] * bool(r.duplicates) + [
                f"{r.missed} missed"
            ] * bool(r.missed)
            return f" (with {' and '.join(bad)} in that window)" if bad else ""

        return excuse

    no_standby = {"naive", "arq", "rq"}

    def count(value: float) -> str:
        return f"{value:.0f}"

    lines = [
        *beaten("1 job, duplicate runs", [(r.system, r.duplicates) for r in single], count),
        *beaten("1 job, missed fire times", [(r.system, r.missed) for r in single], count),
        *beaten("100 jobs, duplicate runs", [(r.system, r.duplicates) for r in burst], count),
        *beaten("100 jobs, missed fire times", [(r.system, r.missed) for r in burst], count),
        *beaten("1 job, lateness p50", honest(single, 0.5), ms, correctness(single)),
        *beaten("1 job, lateness p99", honest(single, 0.99), ms, correctness(single)),
        *beaten("100 jobs due together, lateness p50", honest(burst, 0.5), ms, correctness(burst)),
        *beaten("100 jobs due together, lateness p99", honest(burst, 0.99), ms, correctness(burst)),
    ]
    for kind in ("SIGKILL", "SIGTERM"):
        rows = [(f.system, f.median_gap) for f in failovers if f.signal == kind]
        lines += beaten(
            f"failover after {kind}, median gap",
            rows,
            seconds,
            lambda s: (
                " (every instance of it fires every job: no takeover)"
                if s.name in no_standby
                else ""
            ),
        )
    return lines or ["- Nowhere in this run."]


def render(
    single: list[Runs],
    burst: list[Runs],
    cold: list[ColdStarts],
    failovers: list[Failover],
    args: argparse.Namespace,
    postgres: str,
    took: float,
) -> str:
    kill = [f for f in failovers if f.signal == "SIGKILL"]
    term = [f for f in failovers if f.signal == "SIGTERM"]
    versions = dict.fromkeys((r.system.title, r.system.versions) for r in single)
    redis = f"Redis server v={redis_version()}"
    return "\n".join(
        [
            "# tickonce and its alternatives",
            "",
            f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `make bench-peers` on one "
            f"machine ({os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{redis}, PostgreSQL {postgres}), tickonce at commit "
            f"{commit()}; the whole run took "
            f"{took / 60:.1f} min. Each system runs in a virtualenv of its own with the pinned "
            "versions below; every job body records its own start and the scheduled time its "
            "system gives.",
            "",
            "What each system is here, and what the harness sees of it:",
            *SYSTEM_NOTES,
            "",
            "## Summary",
            "The sections below say how each figure was measured.",
            "",
            *summary_table(single, burst, cold, failovers),
            "",
            "## Where tickonce loses in this run",
            "Every figure below where another system does better than tickonce with its "
            "defaults (lateness only where the system gives a scheduled time):",
            "",
            *losses(single, burst, failovers),
            "",
            "## One 1-s job on two instances",
            f"Two instances of each system, one job every second, over a {args.window:.0f}-s "
            "window after the start. A fire time is a scheduled time of the job; runs of it "
            "beyond the first are duplicates; a fire time in the window with no run is missed.",
            "",
            *runs_table(single),
            "",
            "## 100 jobs due together, every 5 s, on two instances",
            "Two instances, 100 jobs due on the same whole seconds every 5 s (RQ and Celery take "
            "no cron field finer than a minute: 100 5-s interval schedules started together), "
            f"over a {args.burst_window:.0f}-s window; lateness over every run of every job.",
            "",
            *runs_table(burst),
            "",
            "## Two instances started together",
            "Both instances of each system started at the same moment on state neither has "
            "made yet (a new Redis database; for APScheduler 4 a new PostgreSQL database), as "
            "when a deployment first comes up; a try counts if either exits within 8 s. Every "
            "other measurement here starts APScheduler 4's second instance once the first has "
            "run a job.",
            "",
            *table(
                ["tries", "an instance exited"],
                ((c.system, [len(c.exited), exits(c)]) for c in cold),
            ),
            "",
            "## Failover after SIGKILL",
            "Two instances; every process of the one that ran the last run is SIGKILLed; the "
            "gap is from the signal to the first run started by the other instance, at most "
            f'{args.cap:.0f} s waited ("> {args.cap:.0f} s": none by then).',
            "",
            *failover_table(kill),
            "",
            "## Failover after SIGTERM",
            "The same, with SIGTERM: each system's own graceful shutdown (what `docker stop` "
            "and a rolling redeploy send).",
            "",
            *failover_table(term),
            "",
            "## What to keep in mind",
            *CAVEATS,
            "",
            "## Versions",
            *(f"- {title}: {version}" for title, version in versions),
            "",
            "Reproduce: `make bench-peers` (installs Debian's redis-server and postgresql when "
            "missing, and each system's virtualenv under `.peers/` on its first run); "
            "`python -m bench.peers --help` for the windows, tries and cap.",
            "",
        ]
    )
