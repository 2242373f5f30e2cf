"""Changes to the schedule, as the leader applies them: pause, resume, run now, update,
create, delete. Every change goes through the leader's scheduler and its fenced job store.

Each operation is idempotent (applying a command twice leaves the same state), which is what
lets a new leader re-apply a command its predecessor may have applied before dying.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.schedulers.base import BaseScheduler
from pydantic import ValidationError

from tickonce._control.channel import Command, Outcome
from tickonce._control.reads import JobView
from tickonce._exceptions import (
    JobDefinitionError,
    NotLeaderError,
    TickonceError,
    UnknownTaskError,
)
from tickonce._firing.jobstore import APPLYING_COMMAND
from tickonce._firing.scheduler import LeaderScheduler
from tickonce._jobs.policy import RunPolicy
from tickonce._jobs.registry import DEFAULTS, Registry, check_kwargs
from tickonce._jobs.retention import JobRetention, keep_history
from tickonce._jobs.schedules import JobCreate, JobUpdate, first_fire
from tickonce._jobs.tasks import resolve, run_task, task_of
from tickonce._storage.clients import REDIS_TROUBLE

logger = logging.getLogger("tickonce.commands")


class Refusal(TickonceError):
    """A command that cannot be applied as asked; becomes an answer with an HTTP status."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def describe_validation(error: ValidationError) -> str:
    """One readable line per problem: ``field.path: message``."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


class Control:
    """Applies commands to the leader's scheduler."""

    def __init__(
        self,
        scheduler: LeaderScheduler,
        registry: Registry,
        retention: JobRetention,
    ) -> None:
        """:param retention: forgets deleted jobs, keeping their ledger for its history time."""
        self._scheduler = scheduler
        self._registry = registry
        self._retention = retention

    def apply(self, command: Command) -> Outcome:
        """The outcome of one command; every failure is answered, none escapes, except those
        that mean it must be applied again: NotLeaderError (the next leader applies it) and
        Redis errors (it stays pending and is retried)."""
        handlers = {
            "pause": self._pause,
            "resume": self._resume,
            "run": self._run,
            "update": self._update,
            "create": self._create,
            "delete": self._delete,
        }
        applying = APPLYING_COMMAND.set(command.id)  # its job store writes mark it applied
        try:
            return handlers[command.op](command)
        except Refusal as refusal:
            return Outcome(status="done", code=refusal.code, detail=refusal.detail)
        except ValidationError as exc:
            return Outcome(status="done", code=422, detail=describe_validation(exc))
        except (JobDefinitionError, UnknownTaskError, ValueError) as exc:
            return Outcome(status="done", code=422, detail=str(exc))
        except NotLeaderError:
            raise
        except REDIS_TROUBLE:
            raise
        except Exception as exc:
            logger.exception("command %s %s %s failed", command.id, command.op, command.job_id)
            return Outcome(
                status="done",
                code=500,
                detail=f"the leader could not apply {command.op} to job {command.job_id!r}: "
                f"{type(exc).__name__}: {exc}",
            )
        finally:
            APPLYING_COMMAND.reset(applying)

    def _job(self, job_id: str) -> Job:
        job = self._scheduler.get_job(job_id)
        if job is None:
            raise Refusal(404, f"job {job_id!r} not found")
        return job

    def _pause(self, command: Command) -> Outcome:
        job = self._job(command.job_id)
        if job.next_run_time is not None:
            job = self._scheduler.pause_job(job.id)
        return done(job)

    def _resume(self, command: Command) -> Outcome:
        job = self._job(command.job_id)
        if job.next_run_time is None:
            resumed = self._scheduler.resume_job(job.id)
            if resumed is None:
                raise Refusal(
                    409, f"job {job.id!r} has no future fire time, so resuming removed it"
                )
            job = resumed
        return done(job)

    def _run(self, command: Command) -> Outcome:
        job = self._job(command.job_id)
        resolve(task_of(job), self._registry)  # a task this code lacks would only be skipped
        what = self._scheduler.run_now(job, command.id, command.created_at)
        return done(job, detail=f"run now: {what}")

    def _update(self, command: Command) -> Outcome:
        job = self._job(command.job_id)
        update = JobUpdate.model_validate(command.payload)
        changes: dict[str, Any] = update.option_changes()
        policy = update.policy(RunPolicy.of(job))
        changes["args"] = [task_of(job), policy.as_arg()]
        changes["coalesce"] = policy.coalesce
        if update.kwargs is not None:
            check_kwargs(job.id, resolve(task_of(job), self._registry).func, update.kwargs)
            changes["kwargs"] = update.kwargs
        if update.trigger is not None:
            trigger = update.trigger.build()
            first = first_fire(trigger, now(self._scheduler))
            if first is None:
                raise Refusal(422, "trigger: the new trigger never fires (a date in the past?)")
            changes["trigger"] = trigger
            if job.next_run_time is not None:  # a paused job stays paused
                changes["next_run_time"] = first
        return done(self._scheduler.modify_job(job.id, **changes))

    def _create(self, command: Command) -> Outcome:
        spec = JobCreate.model_validate(command.payload)
        task = resolve(spec.task, self._registry)
        check_kwargs(spec.id, task.func, spec.kwargs)
        trigger = spec.trigger.build()
        if first_fire(trigger, now(self._scheduler)) is None:
            raise Refusal(422, "trigger: it never fires (a date in the past?)")
        policy = spec.policy(RunPolicy())
        options = {
            **DEFAULTS,
            "name": spec.id,
            **spec.option_changes(),
            "coalesce": policy.coalesce,
        }
        existing = self._scheduler.get_job(spec.id)
        if existing is not None:
            same = (
                RunPolicy.of(existing) == policy
                and task_of(existing) == spec.task
                and str(existing.trigger) == str(trigger)
                and dict(existing.kwargs) == spec.kwargs
                and all(getattr(existing, k) == v for k, v in options.items())
            )
            if same:  # this very command, applied before (maybe not to its end)
                keep_history(self._retention.client, self._retention.keys, existing.id)
                return done(existing, code=201)
            raise Refusal(
                409,
                f"a job with id {spec.id!r} already exists; choose another id or PATCH that job",
            )
        extra = {"next_run_time": None} if spec.start_paused else {}
        job = self._scheduler.add_job(
            run_task,
            trigger=trigger,
            id=spec.id,
            args=[spec.task, policy.as_arg()],
            kwargs=spec.kwargs,
            **options,
            **extra,
        )
        # A job created under the id of one deleted: its ledger is for good again.
        keep_history(self._retention.client, self._retention.keys, job.id)
        return done(job, code=201)

    def _delete(self, command: Command) -> Outcome:
        if self._scheduler.get_job(command.job_id) is None and self._applied(command):
            return Outcome(status="done", code=204)  # by this very command, answer lost
        job = self._job(command.job_id)
        if self._registry.get(job.id) is not None:
            raise Refusal(
                409,
                f"job {job.id!r} is defined in code (JOBS_MODULES) and would "
                "come back at the next start; pause it, or remove it from the code",
            )
        self._scheduler.remove_job(job.id)
        # What the job left in Redis goes too (its ledger after the history time). Deleted is
        # the answer even if this fails: the leader's sweep forgets the job later.
        try:
            forgotten = self._retention.forget(job.id)
        except REDIS_TROUBLE as exc:
            logger.warning("job %s deleted; forgetting its state failed (%s)", job.id, exc)
        else:
            if forgotten is not None and (forgotten.claims_kept or forgotten.slots_kept):
                logger.info(
                    "job %s deleted while %d run(s) were going: each is recorded when it ends",
                    job.id,
                    max(forgotten.claims_kept, forgotten.slots_kept),
                )
        return Outcome(status="done", code=204)

    def _applied(self, command: Command) -> bool:
        """Whether a job store write of this command landed before (applied, then its
        answer was lost: the connection dropped, or the leader changed)."""
        keys = self._retention.keys.of_job(command.job_id)
        return bool(self._retention.client.exists(keys.command_applied(command.id)))


def done(job: Job, *, code: int = 200, detail: str = "") -> Outcome:
    return Outcome(
        status="done", code=code, detail=detail, job=JobView.of(job).model_dump(mode="json")
    )


def now(scheduler: BaseScheduler) -> datetime:
    return datetime.now(scheduler.timezone)
