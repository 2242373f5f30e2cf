"""The drop-in AsyncIOScheduler: APScheduler's calls as the recipe uses them, and each call it
cannot honour across processes refused at once, saying why and what to do instead."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from apscheduler.jobstores.base import ConflictingIdError
from apscheduler.jobstores.memory import MemoryJobStore

from tests.support import dropin_jobs
from tests.support.dropin_jobs import Reports, noop, report, spread
from tests.support.processes import REPO
from tickonce import AsyncIOScheduler, JobDefinitionError, UnsupportedCallError
from tickonce._jobs.registry import registry


@pytest.fixture
def scheduler() -> Iterator[AsyncIOScheduler]:
    before = {spec.id for spec in registry.specs()}
    yield AsyncIOScheduler(timezone="UTC")
    for spec in registry.specs():
        if spec.id not in before:
            registry.remove(spec.id)


def test_a_job_id_defaults_to_the_functions_import_path_the_same_in_every_process(
    scheduler: AsyncIOScheduler,
) -> None:
    job = scheduler.add_job(noop, "interval", seconds=1, max_instances=2)
    assert (job.id, job.pending, job.max_instances) == ("tests.support.dropin_jobs.noop", True, 2)
    spec = registry.get(job.id)
    assert spec is not None and spec.func is noop and spec.trigger == "interval"
    pending = {j.id: j for j in scheduler.get_jobs()}  # (with any @job this process defines)
    assert pending[job.id].pending, "before start: the jobs defined here, pending"
    with pytest.raises(ConflictingIdError):
        scheduler.add_job(noop, "interval", seconds=5)
    replaced = scheduler.add_job(noop, "interval", seconds=5, replace_existing=True)
    assert replaced.trigger == "interval[0:00:05]"


def test_apscheduler_options_map_to_tickonces(scheduler: AsyncIOScheduler) -> None:
    scheduler.add_job(
        "tests.support.dropin_jobs:report",
        "cron",
        args=["acme"],
        kwargs={"days": 30, "format": "pdf"},
        id="monthly",
        misfire_grace_time=60,
        coalesce=False,
        minute=5,
    )
    paused = scheduler.add_job(noop, "interval", id="later", minutes=1, next_run_time=None)
    spec = registry.get("monthly")
    assert spec is not None and spec.func is report
    assert dict(spec.kwargs) == {"customer": "acme", "days": 30, "format": "pdf"}
    assert (spec.misfire_grace_time, spec.policy.catch_up) == (60, "all")
    assert paused.pending and registry.get("later").start_paused  # type: ignore[union-attr]

    decorated = scheduler.scheduled_job("interval", id="decorated", seconds=2)(noop)
    assert decorated is noop and registry.get("decorated").func is noop  # type: ignore[union-attr]


def _lambda_job() -> Callable[[], None]:
    return lambda: None


def _nested_job() -> Callable[[], None]:
    def nested() -> None: ...

    return nested


REFUSED: list[tuple[str, Callable[[AsyncIOScheduler], Any], str]] = [
    ("lambda", lambda s: s.add_job(_lambda_job(), "interval", seconds=1), "a lambda has no name"),
    (
        "nested",
        lambda s: s.add_job(_nested_job(), "interval", seconds=1),
        "defined inside another function cannot be imported by name",
    ),
    (
        "bound method",
        lambda s: s.add_job(Reports().send, "interval", seconds=1),
        "a bound method runs with an object that exists only in this process",
    ),
    (
        "partial",
        lambda s: s.add_job(functools.partial(report, "acme"), "interval", seconds=1),
        "only plain functions can be imported by name",
    ),
    (
        "unstorable args",
        lambda s: s.add_job(report, "interval", args=[object()], seconds=1),
        "differs in every process",
    ),
    (
        "unpicklable args",
        lambda s: s.add_job(report, "interval", kwargs={"customer": threading.Lock()}, seconds=1),
        "cannot be stored",
    ),
    (
        "star args",
        lambda s: s.add_job(spread, "interval", args=["a", "b"], seconds=1),
        "cannot be stored by name",
    ),
    ("no trigger", lambda s: s.add_job(noop), "give a trigger"),
    (
        "trigger object",
        lambda s: s.add_job(
            noop,
            __import__("apscheduler.triggers.interval").triggers.interval.IntervalTrigger(
                seconds=1
            ),
        ),
        "pass the trigger by name",
    ),
    (
        "jobstore",
        lambda s: s.add_job(noop, "interval", seconds=1, jobstore="memory"),
        "every job is kept in Redis",
    ),
    (
        "executor",
        lambda s: s.add_job(noop, "interval", seconds=1, executor="processpool"),
        "job bodies run in the leader's worker processes",
    ),
    (
        "next_run_time",
        lambda s: s.add_job(
            noop, "interval", seconds=1, next_run_time=__import__("datetime").datetime.now()
        ),
        "use start_date",
    ),
    ("start paused", lambda s: s.start(paused=True), "pause jobs with pause_job"),
    ("listener", lambda s: s.add_listener(print), "read the run ledger"),
    ("add_jobstore", lambda s: s.add_jobstore(MemoryJobStore()), "every job is kept in Redis"),
    ("add_executor", lambda s: s.add_executor(object()), "worker processes"),
    ("pause", lambda s: s.pause(), "pause jobs with pause_job"),
    ("remove_all_jobs", lambda s: s.remove_all_jobs(), "remove jobs one by one"),
    ("modify func", lambda s: s.modify_job("x", func=noop), "define a job with the other function"),
    ("modify trigger", lambda s: s.modify_job("x", trigger="cron"), "use reschedule_job"),
]


@pytest.mark.parametrize(
    ("call", "says"), [(c, s) for _, c, s in REFUSED], ids=[n for n, _, _ in REFUSED]
)
def test_calls_that_cannot_hold_across_processes_are_refused_saying_why(
    scheduler: AsyncIOScheduler, call: Callable[[AsyncIOScheduler], Any], says: str
) -> None:
    with pytest.raises(UnsupportedCallError, match=says):
        call(scheduler)
    assert not any(s.id.startswith("tests.") for s in registry.specs()), "nothing was defined"


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (
            {"jobstores": {"default": MemoryJobStore()}},
            r"jobstores=...\): every job is kept in Redis",
        ),
        ({"executors": {}}, "job bodies run in the leader's worker processes"),
        ({"job_defaults": {"jitter": 3}}, "unsupported key"),
        ({"daemon": True}, "unsupported option"),
    ],
)
def test_constructor_arguments_that_do_not_apply_are_refused(
    options: dict[str, Any], says: str
) -> None:
    with pytest.raises(UnsupportedCallError, match=says):
        AsyncIOScheduler(**options)


def test_bad_job_definitions_say_what_to_fix(scheduler: AsyncIOScheduler) -> None:
    with pytest.raises(JobDefinitionError, match="args do not fit the function"):
        scheduler.add_job(report, "interval", args=["a", 1, 2], seconds=1)
    with pytest.raises(JobDefinitionError, match="invalid interval trigger"):
        scheduler.add_job(noop, "interval", fortnights=1)
    with pytest.raises(JobDefinitionError, match="max_instances must be >= 1"):
        scheduler.add_job(noop, "interval", seconds=1, max_instances=0)


def test_changes_to_stored_jobs_wait_for_start(scheduler: AsyncIOScheduler) -> None:
    from apscheduler.schedulers import SchedulerNotRunningError

    with pytest.raises(SchedulerNotRunningError, match="go through the cluster's leader"):
        scheduler.pause_job("x")
    assert dropin_jobs.noop is noop


def test_a_job_bodys_worker_process_never_starts_a_scheduler() -> None:
    """Workers import the job's module; one that starts its scheduler at import time must not
    make every body worker a contender (the fork server marks its processes)."""
    code = (
        "from tickonce._bodies import forkserver\n"
        "from tickonce import AsyncIOScheduler\n"
        "scheduler = AsyncIOScheduler()\n"
        "scheduler.start()\n"
        "print('running' if scheduler.running else 'not running')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.stdout.strip() == "not running"
