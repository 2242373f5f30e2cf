"""tickonce's public face: everything a user imports comes from here.

- ``job``, ``current_run``, ``RunContext``: jobs as plain functions (``@job("interval",
  seconds=10)``) and, inside a run, which fire time it serves.
- ``AsyncIOScheduler``, ``ScheduledJob``: the drop-in for APScheduler 3's AsyncIOScheduler
  (change the import, keep the recipe).
- ``include_tickonce``: tickonce's endpoints and status page in your own FastAPI app.
- ``Settings``: tickonce's configuration (read from the environment).
- The errors, every one a ``TickonceError``: ``ConfigError`` (and ``JobsModuleError``),
  ``JobDefinitionError``, ``UnknownTaskError``, ``UnsupportedCallError``, ``NotStartedError``,
  ``LeaderUnavailable``, ``UnreadableJobError``; and APScheduler's ``JobLookupError`` and
  ``ConflictingIdError``, which the drop-in raises where APScheduler does.

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
    from tickonce._config.settings import Settings
    from tickonce._dropin import AsyncIOScheduler, ScheduledJob
    from tickonce._exceptions import (
        ConfigError,
        JobDefinitionError,
        JobsModuleError,
        LeaderUnavailable,
        NotStartedError,
        TickonceError,
        UnknownTaskError,
        UnreadableJobError,
        UnsupportedCallError,
    )
    from tickonce._jobs.registry import RunContext, current_run, job

__all__ = [
    "AsyncIOScheduler",
    "ConfigError",
    "ConflictingIdError",
    "JobDefinitionError",
    "JobLookupError",
    "JobsModuleError",
    "LeaderUnavailable",
    "NotStartedError",
    "RunContext",
    "ScheduledJob",
    "Settings",
    "TickonceError",
    "UnknownTaskError",
    "UnreadableJobError",
    "UnsupportedCallError",
    "current_run",
    "include_tickonce",
    "job",
]

_HOME = {
    "AsyncIOScheduler": "tickonce._dropin",
    "ConfigError": "tickonce._exceptions",
    "ConflictingIdError": "apscheduler.jobstores.base",
    "JobDefinitionError": "tickonce._exceptions",
    "JobLookupError": "apscheduler.jobstores.base",
    "JobsModuleError": "tickonce._exceptions",
    "LeaderUnavailable": "tickonce._exceptions",
    "NotStartedError": "tickonce._exceptions",
    "RunContext": "tickonce._jobs.registry",
    "ScheduledJob": "tickonce._dropin",
    "Settings": "tickonce._config.settings",
    "TickonceError": "tickonce._exceptions",
    "UnknownTaskError": "tickonce._exceptions",
    "UnreadableJobError": "tickonce._exceptions",
    "UnsupportedCallError": "tickonce._exceptions",
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
