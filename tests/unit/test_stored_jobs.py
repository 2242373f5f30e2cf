"""A job's stored form names its task the way every release has stored it, so data written by
any release loads in any other (an upgrade and a rollback read the same store)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime

from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.util import ref_to_obj

from tickonce._jobs.tasks import STORED_TASK_REF, TASK_REF, dump_job, load_job, run_task


def test_a_job_is_stored_under_the_task_name_of_every_release_and_loads_back() -> None:
    scheduler = BackgroundScheduler(timezone=UTC)
    job = Job(
        scheduler,
        id="j",
        func=run_task,
        trigger=scheduler._create_trigger("interval", {"seconds": 5}),
        executor="default",
        args=["j", {}],
        kwargs={},
        name="j",
        misfire_grace_time=1,
        coalesce=True,
        max_instances=1,
        next_run_time=None,
    )
    stored = dump_job(job)
    assert pickle.loads(stored)["func"] == STORED_TASK_REF == "services.core.tasks:run_task"
    loaded = load_job(stored)
    assert loaded.func is run_task and loaded.func_ref == TASK_REF
    assert ref_to_obj(TASK_REF) is run_task
    assert loaded.id == "j" and loaded.next_run_time is None and list(loaded.args) == ["j", {}]
    again = dump_job(loaded)
    assert again == stored


def test_a_job_stored_by_0_2_0_loads() -> None:
    state = {
        "version": 1,
        "id": "old",
        "func": "services.core.tasks:run_task",
        "trigger": BackgroundScheduler(timezone=UTC)._create_trigger("interval", {"seconds": 2}),
        "executor": "default",
        "args": ("old", {"catch_up": "coalesce"}),
        "kwargs": {},
        "name": "old",
        "misfire_grace_time": 1,
        "coalesce": True,
        "max_instances": 1,
        "next_run_time": datetime(2026, 1, 1, tzinfo=UTC),
    }
    job = load_job(pickle.dumps(state))
    assert job.func is run_task and job.args[0] == "old"
