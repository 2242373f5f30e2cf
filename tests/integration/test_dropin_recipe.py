"""The classic recipe with one import changed (examples/recipe/main.py), as its users run it:
two gunicorn servers of 4 workers each sharing one Redis. Every fire time runs once across all
eight workers (the body's own output and the ledger agree), max_instances holds across the
cluster, and every fire time is in the ledger."""

from __future__ import annotations

import sys
from datetime import datetime

import redis

from tests.support.ledger_checks import duplicates, gaps
from tests.support.processes import REPO, Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.keys import Keys

RECIPE = REPO / "examples" / "recipe"
JOB = "main.tick"  # the id the drop-in derives from the function: module.qualname


def gunicorn(processes: Processes, name: str, port: int, redis_url: str) -> None:
    """The recipe's own command line, from the recipe's directory."""
    argv = [sys.executable, "-m", "gunicorn", "-w", "4", "-k", "uvicorn_worker.UvicornWorker"]
    argv += ["--bind", f"127.0.0.1:{port}", "main:app"]
    processes.start_in(RECIPE, name, argv, REDIS_URL=redis_url, PYTHONPATH=f"{REPO}:{RECIPE}")


def overlapping(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals open at any one instant."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_the_recipe_with_one_import_changed_runs_each_fire_time_once_across_two_servers(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    for name in ("one", "two"):
        gunicorn(processes, name, free_port(), redis_server.url)
    runs = Keys(prefix).ledger(JOB)
    wait_until(lambda: client.xlen(runs) >= 12, 60, "twelve fire times in the ledger")
    for name in ("one", "two"):
        assert processes.terminate(name) == 0, processes.log(name)[-3000:]

    ledger = [RunRecord.from_fields(fields) for _, fields in client.xrange(runs) or []]
    times = [fire_ms(entry.scheduled_at) for entry in ledger]
    assert not duplicates(times), f"fire times recorded twice: {duplicates(times)}"
    assert not gaps(times), f"fire times missing from the ledger: {gaps(times)}"
    started = [entry for entry in ledger if entry.started_at is not None]
    printed = [
        line
        for name in ("one", "two")
        for line in processes.log(name).splitlines()
        if line.startswith("tick ")
    ]
    assert len(printed) == len(started), (
        f"the body printed {len(printed)} times for {len(started)} runs in the ledger"
    )
    assert {entry.status for entry in started} == {"succeeded"}, [
        (entry.status, entry.reason, entry.error) for entry in started
    ]
    skipped = [entry for entry in ledger if entry.status == "skipped"]
    assert skipped and {entry.reason for entry in skipped} == {"max_instances (2) reached"}, (
        "a 3-s body every second with max_instances=2 skips fire times while two run"
    )
    intervals = [
        (e.started_at, e.finished_at)
        for e in started
        if e.started_at is not None and e.finished_at is not None
    ]
    assert overlapping(intervals) <= 2, "max_instances=2 is counted across the cluster"
