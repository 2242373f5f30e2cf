"""Jobs that release 0.2.0 (``services.core``) and this code (``tickonce``) both load, the same
definitions in each: the storage upgrade and rollback test runs them under both. Every run
appends its job, fire time and runner to a list of its own (``runs_key``)."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.support.any_release import public, record_run

Body = Callable[[], None]
job: Callable[..., Callable[[Body], Body]] = public.job

EVERY_SECOND = "every-second"
ONCE = "once"
# The one-off job's fire time, the same in every process of a test.
ONCE_AT = os.environ.get("UPGRADE_ONCE_AT", "2000-01-01T00:00:00+00:00")


def runs_key(prefix: str) -> str:
    return f"{prefix}upgrade-test:runs"


@job("interval", seconds=1, id=EVERY_SECOND)
def every_second() -> None:
    record_run(runs_key(os.environ["KEY_PREFIX"]))


@job("date", run_date=ONCE_AT, id=ONCE)
def once() -> None:
    record_run(runs_key(os.environ["KEY_PREFIX"]))
