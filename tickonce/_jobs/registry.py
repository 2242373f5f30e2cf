"""Jobs as plain functions: the ``@job`` decorator, the registry it fills and the run context.

Jobs are only ever referenced by their registered id, so nothing (no request, no stored job)
can make tickonce import or call an arbitrary callable.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from tickonce._exceptions import JobDefinitionError, JobsModuleError
from tickonce._jobs.policy import RunPolicy, removed_spellings, resolve_catch_up
from tickonce._jobs.schedules import JOB_ID_PATTERN

F = TypeVar("F", bound=Callable[..., Any])

TRIGGERS: dict[str, type[BaseTrigger]] = {
    "interval": IntervalTrigger,
    "cron": CronTrigger,
    "date": DateTrigger,
}
DEFAULT_TIMEZONE = "UTC"
# APScheduler's own job defaults, stated here so the code definition is complete.
DEFAULTS: dict[str, Any] = {"max_instances": 1, "misfire_grace_time": 1, "coalesce": True}


@dataclass(frozen=True)
class JobSpec:
    """A job as defined in code: its function, trigger and options."""

    id: str
    func: Callable[..., Any]
    trigger: str
    trigger_args: Mapping[str, Any]
    name: str
    max_instances: int
    misfire_grace_time: int | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    start_paused: bool = False
    policy: RunPolicy = field(default_factory=RunPolicy)

    @property
    def coalesce(self) -> bool:
        return self.policy.coalesce

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def build_trigger(self) -> BaseTrigger:
        """A fresh trigger (an interval's start is counted from now)."""
        return build_trigger(self.id, self.trigger, self.trigger_args)

    @property
    def options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "max_instances": self.max_instances,
            "misfire_grace_time": self.misfire_grace_time,
            "coalesce": self.coalesce,
        }

    @functools.cached_property
    def fingerprint(self) -> str:
        """Changes when the definition in code changes; decides whether a sync updates a job."""
        definition = {
            "trigger": self.trigger,
            "trigger_args": {key: repr(value) for key, value in self.trigger_args.items()},
            "kwargs": {key: repr(value) for key, value in self.kwargs.items()},
            **self.options,
            **self.policy.as_arg(),
        }
        encoded = json.dumps(definition, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]


def build_trigger(job_id: str, trigger: str, trigger_args: Mapping[str, Any]) -> BaseTrigger:
    """An APScheduler trigger, or JobDefinitionError saying what is wrong with the arguments."""
    cls = TRIGGERS.get(trigger)
    if cls is None:
        raise JobDefinitionError(
            f"job {job_id!r}: unknown trigger {trigger!r}; use one of {sorted(TRIGGERS)}"
        )
    args = dict(trigger_args)
    args.setdefault("timezone", DEFAULT_TIMEZONE)
    try:
        return cls(**args)
    except (TypeError, ValueError, LookupError) as exc:
        raise JobDefinitionError(f"job {job_id!r}: invalid {trigger} trigger: {exc}") from None


@dataclass(frozen=True)
class RunContext:
    """What a running job knows about the fire it serves."""

    job_id: str
    scheduled_at: datetime
    epoch: int
    runner: str


_current_run: ContextVar[RunContext] = ContextVar("tickonce_current_run")


def current_run() -> RunContext:
    """The run context of the job running in this task or thread.

    :raises RuntimeError: when called outside a job run.
    """
    try:
        return _current_run.get()
    except LookupError:
        raise RuntimeError(
            "current_run() is only available inside a running tickonce job"
        ) from None


def enter_run(context: RunContext) -> None:
    """Bind the run context for the current task (or the context a thread will run in)."""
    _current_run.set(context)


class Registry:
    """Jobs defined in code, by id."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def job(
        self,
        trigger: str,
        *,
        id: str | None = None,
        name: str | None = None,
        kwargs: Mapping[str, Any] | None = None,
        max_instances: int = DEFAULTS["max_instances"],
        misfire_grace_time: int | None = DEFAULTS["misfire_grace_time"],
        catch_up: str = "coalesce",
        timeout: float | None = None,
        start_paused: bool = False,
        **trigger_args: Any,
    ) -> Callable[[F], F]:
        """Register a function as a job, like APScheduler's ``scheduled_job``.

        ``max_instances``: runs allowed at once across the whole cluster (default 1: a fire
        time that comes while the job runs is recorded as skipped). ``catch_up``: fire times
        missed during downtime are ``coalesce``d into one run (default), ``all`` run, or all
        ``skip``ped.
        ``timeout``: seconds after which a run is stopped and recorded as failed.
        ``start_paused=True`` adds the job paused when it is first scheduled; it runs once
        resumed. Later starts keep whatever paused state the job has.
        """

        def register(func: F) -> F:
            job_id = id or func.__name__
            try:
                removed_spellings(trigger_args, f"job {job_id!r}: ")
                policy = RunPolicy(resolve_catch_up(job_id, catch_up), timeout)
            except ValueError as exc:
                raise JobDefinitionError(str(exc)) from None
            if timeout is not None and timeout <= 0:
                raise JobDefinitionError(f"job {job_id!r}: timeout must be > 0 seconds")
            spec = JobSpec(
                id=job_id,
                func=func,
                trigger=trigger,
                trigger_args=dict(trigger_args),
                name=name or job_id,
                max_instances=max_instances,
                misfire_grace_time=misfire_grace_time,
                kwargs=dict(kwargs or {}),
                start_paused=start_paused,
                policy=policy,
            )
            self.add(spec)
            return func

        return register

    def add(self, spec: JobSpec, *, replace: bool = False) -> None:
        """Validate and register a job definition (``replace``: one with the same id may be
        registered already, and this one takes its place)."""
        if not re.fullmatch(JOB_ID_PATTERN, spec.id):
            raise JobDefinitionError(
                f"job id {spec.id!r}: start with a letter or digit, then use letters, digits, "
                "'-', '_' and '.' (200 characters at most)"
            )
        if spec.max_instances < 1:
            raise JobDefinitionError(f"job {spec.id!r}: max_instances must be >= 1")
        if spec.misfire_grace_time is not None and spec.misfire_grace_time < 1:
            raise JobDefinitionError(f"job {spec.id!r}: misfire_grace_time must be >= 1 or None")
        if "<" in spec.func.__qualname__ or spec.func.__module__ == "__main__":
            raise JobDefinitionError(
                f"job {spec.id!r}: {_where(spec.func)} cannot be imported by name; job bodies run "
                "in worker processes that import them, so define it at the top level of a module"
            )
        spec.build_trigger()
        check_kwargs(spec.id, spec.func, spec.kwargs)
        existing = self._specs.get(spec.id)
        if existing is not None and existing.func is not spec.func and not replace:
            raise JobDefinitionError(
                f"duplicate job id {spec.id!r}: defined by {_where(existing.func)} "
                f"and {_where(spec.func)}; pass id=... to one of them"
            )
        self._specs[spec.id] = spec

    def remove(self, job_id: str) -> None:
        """This code no longer defines the job (KeyError if it did not)."""
        del self._specs[job_id]

    def get(self, job_id: str) -> JobSpec | None:
        return self._specs.get(job_id)

    def specs(self) -> list[JobSpec]:
        return list(self._specs.values())

    def clear(self) -> None:
        self._specs.clear()


def check_kwargs(job_id: str, func: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """JobDefinitionError unless ``func`` can be called with exactly these keyword arguments."""
    try:
        inspect.signature(func).bind(**kwargs)
    except TypeError as exc:
        raise JobDefinitionError(f"job {job_id!r}: kwargs do not fit the function: {exc}") from None


def _where(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{func.__qualname__}"


registry = Registry()
job = registry.job


def load_job_modules(modules: Iterable[str]) -> None:
    """Import each module so its ``@job`` functions register themselves.

    :raises JobsModuleError: naming the module and the reason, for a one-line start error.
    """
    for module in modules:
        try:
            importlib.import_module(module)
        except JobDefinitionError as exc:
            raise JobsModuleError(f"JOBS_MODULES: {module!r}: {exc}") from None
        except Exception as exc:
            raise JobsModuleError(
                f"JOBS_MODULES: cannot import {module!r}: {type(exc).__name__}: {exc}"
            ) from None
