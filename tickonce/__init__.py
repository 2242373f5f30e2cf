"""tickonce's public face: everything a user imports comes from here.

- ``job``, ``current_run``, ``RunContext``: jobs as plain functions (``@job("interval",
  seconds=10)``) and, inside a run, which fire time it serves.
- ``AsyncIOScheduler``, ``ScheduledJob``: the drop-in for APScheduler 3's AsyncIOScheduler
  (change the import, keep the recipe).
- ``include_tickonce``: tickonce's endpoints and status page in your own FastAPI app.
- ``Settings``: tickonce's configuration (read from the environment).
- The errors a user can catch: ``JobDefinitionError``, ``UnsupportedCallError``,
  ``LeaderUnavailable``, ``ConfigError``, and APScheduler's ``JobLookupError`` and
  ``ConflictingIdError``.

Only these names are public: every module under ``tickonce`` is private (its name starts with
an underscore) and may change without notice. Names load on first use, so a process that needs
one internal module (a body worker, a health check) does not import the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tickonce._version import __version__ as __version__

if TYPE_CHECKING:
    from apscheduler.jobstores.base import ConflictingIdError, JobLookupError

    from tickonce._api.integration import include_tickonce
    from tickonce._config.settings import ConfigError, Settings
    from tickonce._control.channel import LeaderUnavailable
    from tickonce._dropin import AsyncIOScheduler, ScheduledJob, UnsupportedCallError
    from tickonce._jobs.registry import JobDefinitionError, RunContext, current_run, job

__all__ = [
    "AsyncIOScheduler",
    "ConfigError",
    "ConflictingIdError",
    "JobDefinitionError",
    "JobLookupError",
    "LeaderUnavailable",
    "RunContext",
    "ScheduledJob",
    "Settings",
    "UnsupportedCallError",
    "current_run",
    "include_tickonce",
    "job",
]

_HOME = {
    "AsyncIOScheduler": "tickonce._dropin",
    "ConfigError": "tickonce._config.settings",
    "ConflictingIdError": "apscheduler.jobstores.base",
    "JobDefinitionError": "tickonce._jobs.registry",
    "JobLookupError": "apscheduler.jobstores.base",
    "LeaderUnavailable": "tickonce._control.channel",
    "RunContext": "tickonce._jobs.registry",
    "ScheduledJob": "tickonce._dropin",
    "Settings": "tickonce._config.settings",
    "UnsupportedCallError": "tickonce._dropin",
    "current_run": "tickonce._jobs.registry",
    "include_tickonce": "tickonce._api.integration",
    "job": "tickonce._jobs.registry",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'tickonce' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
