"""The one callable every stored job references.

APScheduler pickles a job's function as an import path and deletes stored jobs whose path no
longer imports. Storing this fixed entry point with the job id as argument keeps jobs (and
their paused state) in the store even while their code is missing, and means a stored job can
only ever run a function registered with ``@job``.
"""

from __future__ import annotations

from typing import Any

from apscheduler.job import Job

from services.core.registry import JobSpec, Registry, registry


class UnknownTaskError(LookupError):
    """The job's task is not registered in this process (its module is not in JOBS_MODULES)."""


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
