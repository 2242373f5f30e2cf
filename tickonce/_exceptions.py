"""Every error tickonce raises, rooted in ``TickonceError``; the public ones are exported by
``tickonce``. Where a standard or APScheduler exception was raised before, the class also
derives from it (``JobDefinitionError`` is a ``ValueError``), so existing ``except`` clauses
keep working."""

from __future__ import annotations

from apscheduler.schedulers import SchedulerNotRunningError


class TickonceError(Exception):
    """The root of every error tickonce raises."""


# -- public -----------------------------------------------------------------------------------


class ConfigError(TickonceError):
    """A setting that cannot be used, or Redis data laid out for another setting or version;
    the message names it and says what is wrong."""


class JobsModuleError(ConfigError):
    """A module listed in JOBS_MODULES that cannot be imported."""


class JobDefinitionError(TickonceError, ValueError):
    """A job definition, or a change to a job, that cannot be scheduled; the message names the
    job and what to fix."""


class UnknownTaskError(TickonceError, LookupError):
    """A job's task is not registered in this process (its module is not in JOBS_MODULES)."""


class UnsupportedCallError(TickonceError, ValueError):
    """An APScheduler call the drop-in cannot honour across processes; the message says why
    and what to do instead."""


class NotStartedError(TickonceError, SchedulerNotRunningError):  # type: ignore[misc]
    """A change to stored jobs before the drop-in's ``start()`` (APScheduler's
    SchedulerNotRunningError, with a message saying why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class LeaderUnavailable(TickonceError):
    """No leader applied a command in time; the message says whether it can still apply."""


class UnreadableJobError(TickonceError):
    """A stored job this code cannot load (stored by another version, or damaged)."""


# -- internal ---------------------------------------------------------------------------------


class NotLeaderError(TickonceError):
    """This process cannot prove it still leads; it must not fire or write the job store."""


class NotDurableError(TickonceError):
    """A new epoch too few replicas acknowledged (CLAIM_MIN_REPLICAS)."""
