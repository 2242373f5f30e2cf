"""Schedules as data: triggers and job options, validated, for changes made at run time.

The API validates requests with these models and the leader validates the commands it applies
with the same ones, so both sides agree on what a valid schedule is.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from tickonce._jobs.policy import RunPolicy, removed_spellings

JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"
MAX_KWARGS_BYTES = 16 * 1024


def first_fire(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The trigger's next fire time from now, or None if it never fires again.

    (APScheduler's date trigger returns its run date even when that is past.)
    """
    first: datetime | None = trigger.get_next_fire_time(None, now)
    return first if first is not None and first >= now else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Timed(_Strict):
    timezone: str = Field("UTC", description="IANA time zone, e.g. Europe/Berlin.", max_length=64)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'"
            ) from None
        return value


class IntervalSpec(_Timed):
    """Every fixed period, counted from ``start_date`` (default: now)."""

    type: Literal["interval"]
    weeks: float = Field(0, ge=0, le=520)
    days: float = Field(0, ge=0, le=3650)
    hours: float = Field(0, ge=0, le=87600)
    minutes: float = Field(0, ge=0, le=5256000)
    seconds: float = Field(0, ge=0, le=315360000)
    start_date: datetime | None = None
    end_date: datetime | None = None

    @model_validator(mode="after")
    def _positive(self) -> IntervalSpec:
        total = (
            self.weeks * 604800
            + self.days * 86400
            + self.hours * 3600
            + self.minutes * 60
            + self.seconds
        )
        if total < 0.001:
            raise ValueError(
                "an interval must be longer than zero: give weeks, days, hours, minutes or seconds"
            )
        return self

    def build(self) -> BaseTrigger:
        return IntervalTrigger(
            weeks=self.weeks,
            days=self.days,
            hours=self.hours,
            minutes=self.minutes,
            seconds=self.seconds,
            start_date=self.start_date,
            end_date=self.end_date,
            timezone=self.timezone,
        )


CronField = Annotated[str, StringConstraints(max_length=100)] | int | None


class CronSpec(_Timed):
    """Calendar times: a crontab ``expression`` or APScheduler's cron fields."""

    type: Literal["cron"]
    expression: str | None = Field(None, max_length=200, description="e.g. '*/15 * * * *'")
    year: CronField = None
    month: CronField = None
    day: CronField = None
    week: CronField = None
    day_of_week: CronField = None
    hour: CronField = None
    minute: CronField = None
    second: CronField = None
    start_date: datetime | None = None
    end_date: datetime | None = None

    @model_validator(mode="after")
    def _buildable(self) -> CronSpec:
        fields = self._fields()
        if (self.expression is None) == (not fields):
            raise ValueError(
                "give either 'expression' (like '*/15 * * * *') or cron fields "
                "(minute, hour, day, ...), not both and not neither"
            )
        try:
            self.build()
        except ValueError as exc:
            raise ValueError(f"invalid cron schedule: {exc}") from None
        return self

    def _fields(self) -> dict[str, str | int]:
        names = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
        return {name: value for name in names if (value := getattr(self, name)) is not None}

    def build(self) -> BaseTrigger:
        if self.expression is not None:
            trigger: BaseTrigger = CronTrigger.from_crontab(self.expression, timezone=self.timezone)
            return trigger
        return CronTrigger(
            **self._fields(),
            start_date=self.start_date,
            end_date=self.end_date,
            timezone=self.timezone,
        )


class DateSpec(_Timed):
    """Once, at ``run_date`` (a time without offset is read in ``timezone``)."""

    type: Literal["date"]
    run_date: datetime

    def build(self) -> BaseTrigger:
        return DateTrigger(run_date=self.run_date, timezone=self.timezone)


TriggerSpec = Annotated[IntervalSpec | CronSpec | DateSpec, Field(discriminator="type")]


class JobOptions(_Strict):
    """Options of a job; each may be left out to keep the current or default value."""

    name: str | None = Field(None, min_length=1, max_length=200)
    max_instances: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Runs allowed at once across the cluster; 1 skips a fire time while a run "
        "goes on.",
    )
    misfire_grace_time: int | None = Field(
        None, ge=1, le=31_536_000, description="Seconds; send null to remove the limit."
    )
    catch_up: Literal["coalesce", "all", "skip"] | None = Field(
        None,
        description="Fire times missed during downtime: coalesce into one run, run all, "
        "or skip all (each is recorded in the ledger).",
    )
    timeout: float | None = Field(
        None, gt=0, le=604_800, description="Seconds a run may take; send null for no limit."
    )

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict):
            removed_spellings(data)
        return data

    def policy(self, current: RunPolicy) -> RunPolicy:
        """The run policy after this change (catch_up and timeout as set)."""
        catch_up = self.catch_up or current.catch_up
        timeout = self.timeout if "timeout" in self.model_fields_set else current.timeout
        return RunPolicy(catch_up, timeout)

    def option_changes(self) -> dict[str, Any]:
        """The options the request set (``misfire_grace_time: null`` means no limit)."""
        changes = {
            name: getattr(self, name)
            for name in ("name", "max_instances")
            if getattr(self, name) is not None
        }
        if "misfire_grace_time" in self.model_fields_set:
            changes["misfire_grace_time"] = self.misfire_grace_time
        return changes


def _small_kwargs(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > MAX_KWARGS_BYTES:
        raise ValueError(f"kwargs are larger than {MAX_KWARGS_BYTES} bytes of JSON")
    return value


class JobCreate(JobOptions):
    """A new schedule of a registered task."""

    id: str = Field(pattern=JOB_ID_PATTERN, description="Letters, digits, '.', '_', '-'.")
    task: str = Field(min_length=1, max_length=200, description="A registered job's id.")
    trigger: TriggerSpec
    kwargs: dict[str, Any] = Field(default_factory=dict, max_length=50)
    start_paused: bool = False

    _kwargs_size = field_validator("kwargs")(classmethod(lambda cls, v: _small_kwargs(v)))


class JobUpdate(JobOptions):
    """Changes to a job: a new trigger, new options, new kwargs. A paused job stays paused."""

    trigger: TriggerSpec | None = None
    kwargs: dict[str, Any] | None = Field(None, max_length=50)

    _kwargs_size = field_validator("kwargs")(
        classmethod(lambda cls, v: v if v is None else _small_kwargs(v))
    )

    @model_validator(mode="after")
    def _something(self) -> JobUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give trigger, kwargs or an option")
        return self
