"""The one callable every stored job references, and a job's stored form.

APScheduler pickles a job's function as an import path and deletes stored jobs whose path no
longer imports. Storing this fixed entry point with the job id as argument keeps jobs (and
their paused state) in the store even while their code is missing, and means a stored job can
only ever run a function registered with ``@job``.

The entry point is stored under the one name it has had since the first release
(``STORED_TASK_REF``), wherever its code lives now: jobs written by any release load in any
other, so an upgrade and a rollback read the same store.
"""

from __future__ import annotations

import pickle
from typing import Any

from apscheduler.job import Job

from tickonce._exceptions import UnknownTaskError
from tickonce._jobs.registry import JobSpec, Registry, registry


def resolve(task: str, jobs: Registry = registry) -> JobSpec:
    """The registered job ``task``, or UnknownTaskError saying how to register it."""
    spec = jobs.get(task)
    if spec is None:
        raise UnknownTaskError(
            f"task {task!r} is not registered here; add its module to JOBS_MODULES"
        )
    return spec


def run_task(task: str, policy: dict[str, Any] | None = None, /, **kwargs: Any) -> Any:
    """Call the registered job ``task`` (the runner resolves it and runs the body in a
    worker; ``policy`` is the job's stored RunPolicy, read by the runner)."""
    return resolve(task).func(**kwargs)


def task_of(job: Job) -> str:
    """The registered task a stored job runs (its first argument, see ``run_task``)."""
    return str(job.args[0]) if job.args else str(job.id)


# run_task as every stored job names it (its module in releases before 0.3.0), and as it
# imports now. Storage format 1 (see _storage/layout.py) stores the first.
STORED_TASK_REF = "services.core.tasks:run_task"
TASK_REF = f"{run_task.__module__}:{run_task.__qualname__}"


def dump_job(job: Job, protocol: int = pickle.HIGHEST_PROTOCOL) -> bytes:
    """A job's stored form: APScheduler's pickled job state, its task under STORED_TASK_REF."""
    state = job.__getstate__()
    if state["func"] == TASK_REF:
        state["func"] = STORED_TASK_REF
    return pickle.dumps(state, protocol)


def load_job(stored: bytes) -> Job:
    """A stored job, not bound to a scheduler or store; raises what unpickling or resolving
    its function raises when this code cannot load it."""
    state = pickle.loads(stored)
    if state.get("func") == STORED_TASK_REF:
        state["func"] = TASK_REF
    job: Job = Job.__new__(Job)
    job.__setstate__(state)
    return job
