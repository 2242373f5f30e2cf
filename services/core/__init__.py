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

Every other module under ``services`` is internal and may change without notice. Names load on
first use, so importing one internal module (a worker process, a health check) does not import
the web framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from apscheduler.jobstores.base import ConflictingIdError, JobLookupError

    from services.api.integration import include_tickonce
    from services.core.command_channel import LeaderUnavailable
    from services.core.dropin import AsyncIOScheduler, ScheduledJob, UnsupportedCallError
    from services.core.registry import JobDefinitionError, RunContext, current_run, job
    from services.core.settings import ConfigError, Settings

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
    "AsyncIOScheduler": "services.core.dropin",
    "ConfigError": "services.core.settings",
    "ConflictingIdError": "apscheduler.jobstores.base",
    "JobDefinitionError": "services.core.registry",
    "JobLookupError": "apscheduler.jobstores.base",
    "LeaderUnavailable": "services.core.command_channel",
    "RunContext": "services.core.registry",
    "ScheduledJob": "services.core.dropin",
    "Settings": "services.core.settings",
    "UnsupportedCallError": "services.core.dropin",
    "current_run": "services.core.registry",
    "include_tickonce": "services.api.integration",
    "job": "services.core.registry",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'services.core' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
