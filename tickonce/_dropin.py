"""The drop-in for APScheduler 3's ``AsyncIOScheduler``: the classic FastAPI recipe, run once
per fire time across every worker and server that shares ``REDIS_URL``.

The recipe creates a scheduler in ``lifespan``, adds its jobs and starts it, in every gunicorn
worker. Here each of those schedulers is a contender for one cluster-wide lease (see
_leadership/contender.py), running on a loop of its own in a background thread: the leader
fires the jobs, the others stand by. What ``add_job`` adds is this process's code definition of
a job (the same as ``@job``); the leader keeps the stored schedule in line with what the live
processes define. Changes to a stored job (pause, resume, reschedule, modify, remove of a job
created through the API) go to the leader as commands and return once it applied them, like the
HTTP API's.

A call that cannot mean the same thing across processes fails at once with
``UnsupportedCallError`` saying why and what to do instead.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import pickle
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, TypeVar

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.schedulers import SchedulerAlreadyRunningError, SchedulerNotRunningError
from apscheduler.triggers.base import BaseTrigger
from apscheduler.util import astimezone, ref_to_obj
from pydantic import ValidationError
from tzlocal import get_localzone

from tickonce._bodies.worker import in_body_process
from tickonce._config.settings import Settings, get_settings
from tickonce._control.apply import describe_validation
from tickonce._control.channel import CommandSender, Op
from tickonce._control.reads import JobView, job_page, read_job
from tickonce._exceptions import (
    JobDefinitionError,
    LeaderUnavailable,
    NotStartedError,
    UnsupportedCallError,
)
from tickonce._jobs.policy import RunPolicy
from tickonce._jobs.registry import DEFAULTS, JobSpec, registry
from tickonce._jobs.schedules import JobUpdate
from tickonce._leadership.contender import Contender
from tickonce._leadership.stop_signals import on_stop_signals
from tickonce._storage.clients import async_redis
from tickonce._storage.keys import Keys

logger = logging.getLogger("tickonce.dropin")

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_SUPPORTED = (
    "add_job, scheduled_job, start, shutdown, pause_job, resume_job, remove_job, get_jobs, "
    "get_job, reschedule_job, modify_job"
)


@dataclass(frozen=True)
class ScheduledJob:
    """A job as the drop-in returns it: APScheduler's ``Job`` attributes and methods, read from
    the shared job store (``pending``: defined here, not stored yet because the scheduler has
    not started)."""

    id: str
    name: str
    trigger: str
    next_run_time: datetime | None
    max_instances: int
    misfire_grace_time: int | None
    coalesce: bool
    kwargs: Mapping[str, Any]
    pending: bool = False
    args: tuple[Any, ...] = ()
    _scheduler: AsyncIOScheduler | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of_view(cls, view: JobView, scheduler: AsyncIOScheduler) -> ScheduledJob:
        return cls(
            id=view.id,
            name=view.name,
            trigger=view.trigger,
            next_run_time=view.next_run_time,
            max_instances=view.max_instances,
            misfire_grace_time=view.misfire_grace_time,
            coalesce=view.catch_up != "all",
            kwargs=view.kwargs,
            _scheduler=scheduler,
        )

    @classmethod
    def of_spec(cls, spec: JobSpec, scheduler: AsyncIOScheduler) -> ScheduledJob:
        return cls(
            id=spec.id,
            name=spec.name,
            trigger=str(spec.build_trigger()),
            next_run_time=None,
            max_instances=spec.max_instances,
            misfire_grace_time=spec.misfire_grace_time,
            coalesce=spec.coalesce,
            kwargs=dict(spec.kwargs),
            pending=True,
            _scheduler=scheduler,
        )

    def _owner(self) -> AsyncIOScheduler:
        if self._scheduler is None:
            raise RuntimeError(f"job {self.id!r} is not bound to a scheduler")
        return self._scheduler

    def pause(self) -> ScheduledJob:
        return self._owner().pause_job(self.id)

    def resume(self) -> ScheduledJob | None:
        return self._owner().resume_job(self.id)

    def remove(self) -> None:
        self._owner().remove_job(self.id)

    def modify(self, **changes: Any) -> ScheduledJob:
        return self._owner().modify_job(self.id, **changes)

    def reschedule(self, trigger: str, **trigger_args: Any) -> ScheduledJob:
        return self._owner().reschedule_job(self.id, trigger=trigger, **trigger_args)


class AsyncIOScheduler:
    """``from tickonce import AsyncIOScheduler`` in place of APScheduler's: the same calls,
    each fire time run once across all processes that share ``REDIS_URL``.

    :param timezone: the default time zone of triggers (APScheduler's default: the local one).
    :param job_defaults: ``max_instances``, ``misfire_grace_time`` and ``coalesce`` for jobs
        that do not give them.
    :param settings: tickonce's settings; by default read from the environment at ``start()``.
    """

    def __init__(
        self,
        gconfig: Mapping[str, Any] | None = None,
        *,
        timezone: tzinfo | str | None = None,
        job_defaults: Mapping[str, Any] | None = None,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        for name, hint in (
            ("jobstores", "every job is kept in Redis (REDIS_URL), where all processes share it"),
            ("executors", "job bodies run in the leader's worker processes (JOB_PROCESSES)"),
            ("event_loop", "the scheduler runs on a loop of its own in a background thread"),
        ):
            if name in options or (gconfig and f"apscheduler.{name}" in gconfig):
                raise UnsupportedCallError(f"AsyncIOScheduler({name}=...): {hint}; remove it")
        unknown = sorted(set(options) | set(gconfig or {}))
        if unknown:
            raise UnsupportedCallError(
                f"AsyncIOScheduler: unsupported option(s) {', '.join(unknown)}; it takes "
                "timezone, job_defaults and settings"
            )
        defaults = dict(job_defaults or {})
        unknown = sorted(set(defaults) - set(DEFAULTS))
        if unknown:
            raise UnsupportedCallError(
                f"job_defaults: unsupported key(s) {', '.join(unknown)}; "
                f"give {', '.join(sorted(DEFAULTS))}"
            )
        self.timezone: tzinfo = astimezone(timezone) or get_localzone()
        self._job_defaults = {**DEFAULTS, **defaults}
        self._settings = settings
        self._engine: _Engine | None = None
        self._signals = ExitStack()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._engine is not None

    def start(self, paused: bool = False) -> None:
        """Start contending for leadership (in a background thread); the leader fires."""
        if paused:
            raise UnsupportedCallError(
                "start(paused=True): the schedule is shared by every process, so one process "
                "cannot hold it back; pause jobs with pause_job (or start them paused with "
                "next_run_time=None)"
            )
        if self._engine is not None:
            raise SchedulerAlreadyRunningError
        if in_body_process():
            # A job body's process imported the module that starts this scheduler at import
            # time: bodies run, they never contend.
            logger.debug("not starting a scheduler in a job body's worker process")
            return
        settings = self._settings or get_settings()
        self._engine = _Engine(settings)
        # Started from a server's lifespan: stop contending at its SIGTERM, not at its end.
        self._signals.enter_context(on_stop_signals(self._engine.contender.retire))

    def shutdown(self, wait: bool = True) -> None:
        """Stop contending: a leader hands the lease over at once; with ``wait``, return once
        the bodies it runs have ended (within ``SHUTDOWN_GRACE_SECONDS``)."""
        if self._engine is None:
            raise SchedulerNotRunningError
        engine, self._engine = self._engine, None
        self._signals.close()
        engine.stop(wait=wait)

    # -- definitions ----------------------------------------------------------------------------

    def add_job(
        self,
        func: Callable[..., Any] | str,
        trigger: str | BaseTrigger | None = None,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        name: str | None = None,
        misfire_grace_time: int | None = _UNSET,
        coalesce: bool = _UNSET,
        max_instances: int = _UNSET,
        next_run_time: datetime | None = _UNSET,
        jobstore: str = "default",
        executor: str = "default",
        replace_existing: bool = False,
        **trigger_args: Any,
    ) -> ScheduledJob:
        """Define a job, as APScheduler's ``add_job``; its id defaults to the function's import
        path (``module.function``), the same in every process."""
        _default_only("jobstore", jobstore, "every job is kept in Redis (REDIS_URL)")
        _default_only("executor", executor, "job bodies run in the leader's worker processes")
        target = _importable(func)
        job_id = id or f"{target.__module__}.{target.__qualname__}"
        trigger_name = _trigger_name(job_id, trigger)
        if next_run_time is not _UNSET and next_run_time is not None:
            raise UnsupportedCallError(
                f"job {job_id!r}: next_run_time=...: the first fire time follows from the "
                "trigger, the same in every process; use start_date (or next_run_time=None to "
                "add it paused)"
            )
        trigger_args.setdefault("timezone", self.timezone)
        spec = JobSpec(
            id=job_id,
            func=target,
            trigger=trigger_name,
            trigger_args=trigger_args,
            name=name or job_id,
            max_instances=self._default(max_instances, "max_instances"),
            misfire_grace_time=self._default(misfire_grace_time, "misfire_grace_time"),
            kwargs=_stored_kwargs(job_id, target, args, kwargs),
            start_paused=next_run_time is None,
            policy=RunPolicy("coalesce" if self._default(coalesce, "coalesce") else "all"),
        )
        if registry.get(job_id) is not None and not replace_existing:
            raise ConflictingIdError(job_id)
        registry.add(spec, replace=replace_existing)
        if self._engine is not None:
            self._engine.definitions_changed()
        return ScheduledJob.of_spec(spec, self)

    def scheduled_job(
        self,
        trigger: str,
        args: list[Any] | tuple[Any, ...] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        name: str | None = None,
        misfire_grace_time: int | None = _UNSET,
        coalesce: bool = _UNSET,
        max_instances: int = _UNSET,
        next_run_time: datetime | None = _UNSET,
        jobstore: str = "default",
        executor: str = "default",
        **trigger_args: Any,
    ) -> Callable[[F], F]:
        """``add_job`` as a decorator."""

        def define(func: F) -> F:
            self.add_job(
                func,
                trigger,
                args=args,
                kwargs=kwargs,
                id=id,
                name=name,
                misfire_grace_time=misfire_grace_time,
                coalesce=coalesce,
                max_instances=max_instances,
                next_run_time=next_run_time,
                jobstore=jobstore,
                executor=executor,
                **trigger_args,
            )
            return func

        return define

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        """A job defined here stops being defined here (it leaves the schedule once no live
        process defines it); a job created through the API is deleted."""
        if registry.get(job_id) is not None:
            registry.remove(job_id)
            if self._engine is not None:
                self._engine.definitions_changed()
            return
        self._command("delete", job_id)

    # -- the stored schedule --------------------------------------------------------------------

    def get_jobs(self, jobstore: str | None = None, pending: bool | None = None) -> list[Any]:
        """Every stored job (before ``start()``: the jobs defined here, pending)."""
        if self._engine is None:
            return [ScheduledJob.of_spec(spec, self) for spec in registry.specs()]
        return [ScheduledJob.of_view(view, self) for view in self._engine.call(_all_jobs)]

    def get_job(self, job_id: str, jobstore: str | None = None) -> ScheduledJob | None:
        """One stored job, or None (before ``start()``: a job defined here, pending)."""
        if self._engine is None:
            spec = registry.get(job_id)
            return ScheduledJob.of_spec(spec, self) if spec is not None else None
        view = self._engine.call(lambda engine: _one_job(engine, job_id))
        return ScheduledJob.of_view(view, self) if view is not None else None

    def pause_job(self, job_id: str, jobstore: str | None = None) -> ScheduledJob:
        return self._changed(self._command("pause", job_id))

    def resume_job(self, job_id: str, jobstore: str | None = None) -> ScheduledJob | None:
        return self._changed(self._command("resume", job_id))

    def reschedule_job(
        self, job_id: str, jobstore: str | None = None, trigger: str = "date", **trigger_args: Any
    ) -> ScheduledJob:
        """A new trigger for the stored job (a paused job stays paused)."""
        if not isinstance(trigger, str):
            raise UnsupportedCallError(
                f"reschedule_job({job_id!r}): pass the trigger by name with its arguments, "
                "e.g. reschedule_job(id, trigger='interval', seconds=5)"
            )
        spec: dict[str, Any] = {"type": trigger, **trigger_args}
        spec.setdefault("timezone", _zone_name(self.timezone))
        return self._changed(self._command("update", job_id, {"trigger": spec}))

    def modify_job(self, job_id: str, jobstore: str | None = None, **changes: Any) -> ScheduledJob:
        """Change ``name``, ``max_instances``, ``misfire_grace_time``, ``coalesce`` or
        ``kwargs`` of the stored job; ``next_run_time=None`` pauses it."""
        for name, hint in (
            ("func", "define a job with the other function (add_job) and remove this one"),
            ("trigger", "use reschedule_job(id, trigger='interval', seconds=...)"),
            ("args", "give kwargs, which are stored by name"),
            ("executor", "job bodies run in the leader's worker processes"),
            ("jobstore", "every job is kept in Redis (REDIS_URL)"),
        ):
            if name in changes:
                raise UnsupportedCallError(f"modify_job({job_id!r}, {name}=...): {hint}")
        if "next_run_time" in changes:
            if changes.pop("next_run_time") is not None:
                raise UnsupportedCallError(
                    f"modify_job({job_id!r}, next_run_time=...): fire times follow from the "
                    "trigger; use reschedule_job, or next_run_time=None to pause the job"
                )
            if changes:
                raise UnsupportedCallError(
                    f"modify_job({job_id!r}): give next_run_time=None alone (it pauses the job)"
                )
            return self.pause_job(job_id)
        if "coalesce" in changes:
            changes["catch_up"] = "coalesce" if changes.pop("coalesce") else "all"
        if "kwargs" in changes:
            changes["kwargs"] = dict(changes["kwargs"])
        return self._changed(self._command("update", job_id, changes))

    # -- what APScheduler has and a cluster cannot mean ----------------------------------------

    def add_listener(self, *args: Any, **kwargs: Any) -> None:
        raise UnsupportedCallError(
            "add_listener: events happen in the leader's process, not this one; read the run "
            "ledger (GET /jobs/{id}/runs) or the metrics instead"
        )

    def add_jobstore(self, *args: Any, **kwargs: Any) -> None:
        raise UnsupportedCallError("add_jobstore: every job is kept in Redis (REDIS_URL)")

    def add_executor(self, *args: Any, **kwargs: Any) -> None:
        raise UnsupportedCallError(
            "add_executor: job bodies run in the leader's worker processes (JOB_PROCESSES)"
        )

    def pause(self) -> None:
        raise UnsupportedCallError(
            "pause: the schedule is shared by every process; pause jobs with pause_job"
        )

    def resume(self) -> None:
        raise UnsupportedCallError("resume: resume jobs with resume_job")

    def remove_all_jobs(self, jobstore: str | None = None) -> None:
        raise UnsupportedCallError(
            "remove_all_jobs: the schedule is shared by every process; remove jobs one by one "
            "with remove_job"
        )

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"tickonce's AsyncIOScheduler has no {name!r}; it supports {_SUPPORTED}"
        )

    # -- internals ------------------------------------------------------------------------------

    def _default(self, value: Any, option: str) -> Any:
        return self._job_defaults[option] if value is _UNSET else value

    def _command(
        self, op: Op, job_id: str, payload: dict[str, Any] | None = None
    ) -> JobView | None:
        if self._engine is None:
            raise NotStartedError(
                f"{op} {job_id!r}: changes to stored jobs go through the cluster's leader; "
                "call this after start()"
            )
        if payload is not None:
            try:
                payload = JobUpdate.model_validate(payload).model_dump(
                    mode="json", exclude_unset=True
                )
            except ValidationError as exc:
                raise JobDefinitionError(f"job {job_id!r}: {describe_validation(exc)}") from None
        engine = self._engine
        return engine.call(lambda e: e.command(op, job_id, payload))

    def _changed(self, view: JobView | None) -> ScheduledJob:
        assert view is not None, "the leader answers a change with the job as it is now"
        return ScheduledJob.of_view(view, self)


def _default_only(name: str, value: str | None, hint: str) -> None:
    if value not in (None, "default"):
        raise UnsupportedCallError(f"{name}={value!r}: {hint}; remove the argument")


def _importable(func: Callable[..., Any] | str) -> Callable[..., Any]:
    """The job's function, if worker processes can import it by name."""
    if isinstance(func, str):
        try:
            target: Callable[..., Any] = ref_to_obj(func)
        except (ValueError, LookupError) as exc:
            raise UnsupportedCallError(f"job function {func!r}: {exc}") from None
    else:
        target = func
    label = getattr(target, "__qualname__", repr(target))
    why = ""
    if inspect.ismethod(target):
        why = "a bound method runs with an object that exists only in this process"
    elif not inspect.isfunction(target):
        why = "only plain functions can be imported by name"
    elif target.__name__ == "<lambda>":
        why = "a lambda has no name to import it by"
    elif "<locals>" in target.__qualname__:
        why = "a function defined inside another function cannot be imported by name"
    elif target.__module__ == "__main__":
        why = "a function of __main__ cannot be imported by name in other processes"
    if why:
        raise UnsupportedCallError(
            f"job function {label}: {why}; job bodies run in the leader's worker processes, "
            "which import them, so define it with def at the top level of a module"
        )
    return target


def _trigger_name(job_id: str, trigger: str | BaseTrigger | None) -> str:
    if trigger is None:
        raise UnsupportedCallError(
            f"job {job_id!r}: give a trigger ('interval', 'cron' or 'date' with its "
            "arguments); without one APScheduler runs the job once, now, in each process"
        )
    if not isinstance(trigger, str):
        raise UnsupportedCallError(
            f"job {job_id!r}: pass the trigger by name with its arguments (e.g. "
            "add_job(f, 'interval', seconds=5)), so every process defines the same schedule"
        )
    return trigger


def _stored_kwargs(
    job_id: str,
    func: Callable[..., Any],
    args: list[Any] | tuple[Any, ...] | None,
    kwargs: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """``args`` and ``kwargs`` as the keyword arguments stored with the job."""
    parameters = inspect.signature(func).parameters
    try:
        bound = inspect.signature(func).bind(*(args or ()), **(kwargs or {}))
    except TypeError as exc:
        raise JobDefinitionError(f"job {job_id!r}: args do not fit the function: {exc}") from None
    named: dict[str, Any] = {}
    for parameter_name, value in bound.arguments.items():
        kind = parameters[parameter_name].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                raise UnsupportedCallError(
                    f"job {job_id!r}: args for *{parameter_name} cannot be stored by name; "
                    "give the function named parameters"
                )
        elif kind is inspect.Parameter.VAR_KEYWORD:
            named.update(value)
        elif kind is inspect.Parameter.POSITIONAL_ONLY:
            raise UnsupportedCallError(
                f"job {job_id!r}: {parameter_name} is positional-only and cannot be stored by "
                "name; make it a normal parameter"
            )
        else:
            named[parameter_name] = value
    for key, value in named.items():
        try:
            pickle.dumps(value)
        except Exception as exc:
            raise UnsupportedCallError(
                f"job {job_id!r}: argument {key}={value!r} cannot be stored ({exc}); pass "
                "plain values (numbers, strings, lists, dicts) and build objects in the job"
            ) from None
        if " at 0x" in repr(value):
            raise UnsupportedCallError(
                f"job {job_id!r}: argument {key}={value!r} differs in every process (it is "
                "an object with an identity); pass plain values and build objects in the job"
            )
    return named


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", None) or zone)


class _Engine:
    """A contender, and the clients the scheduler's calls use, on a loop in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys.of(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tickonce-scheduler", daemon=True
        )
        self._thread.start()
        self._contending: asyncio.Task[None] | None = None
        self.run(self._start()).result()

    async def _start(self) -> None:
        self.redis = async_redis(self.settings)
        self.redis_bytes = async_redis(self.settings, decode=False)
        self.commands = CommandSender(self.redis, self.keys)
        self.contender = Contender(self.settings, registry, mode="embedded")
        self._contending = asyncio.create_task(self.contender.run())

    def run(self, coroutine: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def call(self, work: Callable[[_Engine], Coroutine[Any, Any, T]]) -> T:
        """Run ``work`` on the engine's loop and wait for it (as APScheduler's own calls wait
        for their job store)."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("the scheduler's calls cannot be made from its own thread")
        timeout = self.settings.command_timeout_seconds + 5
        try:
            return self.run(work(self)).result(timeout)
        except FutureTimeout:
            raise LeaderUnavailable(f"no answer from Redis within {timeout:g}s") from None

    def definitions_changed(self) -> None:
        self._loop.call_soon_threadsafe(self.contender.definitions_changed)

    async def command(self, op: Op, job_id: str, payload: dict[str, Any] | None) -> JobView | None:
        outcome = await self.commands.send(
            op, job_id, payload, timeout=self.settings.command_timeout_seconds
        )
        if outcome.code == 404:
            raise JobLookupError(job_id)
        if outcome.code >= 400:
            raise JobDefinitionError(f"job {job_id!r}: {outcome.detail}")
        return None if outcome.job is None else JobView.model_validate(outcome.job)

    def stop(self, *, wait: bool) -> None:
        stopping = self.run(self._stop())
        if wait:
            stopping.result()
            self._thread.join()

    async def _stop(self) -> None:
        try:
            await self.contender.stop()
            if self._contending is not None:
                await self._contending
        finally:
            await self.redis.aclose()
            await self.redis_bytes.aclose()
            self._loop.call_soon(self._loop.stop)


async def _all_jobs(engine: _Engine) -> list[JobView]:
    return [view async for view in _pages(engine)]


async def _pages(engine: _Engine) -> AsyncIterator[JobView]:
    after = ""
    while True:
        page = await job_page(engine.redis_bytes, engine.keys, after=after, limit=1000)
        for job in page.jobs:
            yield JobView.of(job)
        if page.next_after is None:
            return
        after = page.next_after


async def _one_job(engine: _Engine, job_id: str) -> JobView | None:
    job = await read_job(engine.redis_bytes, engine.keys, job_id)
    return JobView.of(job) if job is not None else None
