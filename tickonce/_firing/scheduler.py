"""The leader's APScheduler: an AsyncIOScheduler whose wakeups go through the fire path.

APScheduler keeps what it is good at: the timer on the event loop, job changes (add, modify,
pause, remove) under its job store lock, triggers. A wakeup is the fire path's
(``FirePath.wakeup``), not APScheduler's executor loop: no executor runs a job here, and no
job store read method writes. Wakeups run one at a time in a thread of their own, so their
Redis round trips never hold up the event loop, which renews the lease and runs the bodies'
bookkeeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import TIMEOUT_MAX
from typing import Any, Protocol, TypeVar

from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_STOPPED, BaseScheduler

from tickonce._exceptions import NotLeaderError
from tickonce._storage.clients import REDIS_TROUBLE

logger = logging.getLogger(__name__)

T = TypeVar("T")


class FirePathLike(Protocol):
    """What the scheduler needs of the fire path (``path.FirePath``)."""

    def wakeup(self, now: datetime) -> datetime | None: ...
    def end_wakeup(self) -> None: ...
    def run_now(self, job: Job, command_id: str, requested_at: datetime) -> str: ...


class _NoExecutor(BaseExecutor):  # type: ignore[misc]
    """Stands where APScheduler expects an executor: fires go through the fire path."""

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise RuntimeError("jobs are fired by the fire path, not by an APScheduler executor")


class LeaderScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler that fires through the fire path, survives job store errors and stops
    when it is no longer leader.

    In APScheduler 3.x an exception escaping a wakeup (say, Redis failing while a job's next
    run time is written) ends its timer for good; here it schedules a retry instead.

    Once shut down (its term is over) every job lookup or change raises NotLeaderError. A
    stopped APScheduler touches no store: it would find no job and keep an added one in memory,
    so a command applied as the term ends would be answered "not found" for a job that exists,
    or "created" for one never stored. Raised, the command stays for the next leader.
    """

    def __init__(
        self,
        *,
        path: FirePathLike,
        on_not_leader: Callable[[str], None],
        retry_seconds: float,
        **options: Any,
    ) -> None:
        options.setdefault("timezone", UTC)
        options.setdefault("jobstore_retry_interval", retry_seconds)
        options.setdefault("executors", {"default": _NoExecutor()})
        super().__init__(**options)
        self._path = path
        self._on_not_leader = on_not_leader
        self._retry_seconds = retry_seconds
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tickonce-firing")
        self._firing: asyncio.Future[float | None] | None = None
        self._woken_meanwhile = False
        self._ended = False

    def wakeup(self) -> None:
        """Wake up now (from any thread): jobs changed, or the timer went off."""
        loop = self._eventloop
        if loop is not None:
            loop.call_soon_threadsafe(self._begin_wakeup)

    def _begin_wakeup(self) -> None:
        self._stop_timer()
        if self._eventloop is None or self.state == STATE_STOPPED:
            return  # queued before the shutdown: this scheduler is done
        if self._firing is not None:  # one at a time; a change meanwhile means go again
            self._woken_meanwhile = True
            return
        self._firing = self._eventloop.run_in_executor(self._thread, self._process_jobs)
        self._firing.add_done_callback(self._end_wakeup)

    def _end_wakeup(self, done: asyncio.Future[float | None]) -> None:
        self._firing = None
        wait = None if done.cancelled() or done.exception() else done.result()
        if self._woken_meanwhile:
            self._woken_meanwhile, wait = False, 0.0
        if self._eventloop is not None and self.state != STATE_STOPPED:
            self._start_timer(wait)

    def shutdown(self, wait: bool = True) -> None:
        """Stop now; the job store is closed in the firing thread, after a wakeup in progress
        (APScheduler closes it under the job store lock, which that wakeup holds: on the loop,
        this would wait for it)."""
        if not self.running:
            raise SchedulerNotRunningError
        self._ended = True  # not under the job store lock: a wakeup may hold it (see below)
        self._stop_timer()
        self._eventloop = None  # no wakeup starts from here on
        self._thread.submit(BaseScheduler.shutdown, self, wait)
        self._thread.shutdown(wait=False)

    def run_now(self, job: Job, command_id: str, requested_at: datetime) -> str:
        """Run ``job`` once now (a run-now command): apart from wakeups and job changes."""
        with self._jobstores_lock:
            self._require_leading()  # its claim is fenced: a term ending meanwhile refuses it
            return self._path.run_now(job, command_id, requested_at)

    # -- job changes and lookups: none once the term is over -------------------------------

    def _require_leading(self) -> None:
        if self._ended:
            raise NotLeaderError("the leader's scheduler has stopped: its term is over")

    def _while_leading(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call`` under the job store lock, refused once the term is over, and raising
        NotLeaderError (whatever it returned or raised) if the term ended while it ran: the
        shutdown may have stopped APScheduler in the middle, and what the call then did (a
        job queued in memory, a lookup that found nothing) was not done in the store."""
        with self._jobstores_lock:
            self._require_leading()
            try:
                return call(*args, **kwargs)
            finally:
                self._require_leading()

    def add_job(self, *args: Any, **kwargs: Any) -> Job:
        return self._while_leading(super().add_job, *args, **kwargs)

    def remove_job(self, job_id: str, jobstore: str | None = None) -> None:
        self._while_leading(super().remove_job, job_id, jobstore)

    def get_jobs(self, jobstore: str | None = None, pending: bool | None = None) -> list[Job]:
        return self._while_leading(super().get_jobs, jobstore, pending)

    def _lookup_job(self, job_id: str, jobstore_alias: str | None) -> tuple[Job, str | None]:
        """Behind get_job, modify_job, pause_job, resume_job and reschedule_job."""
        found: tuple[Job, str | None] = self._while_leading(
            super()._lookup_job, job_id, jobstore_alias
        )
        return found

    def _process_jobs(self) -> float | None:
        """One wakeup, in the firing thread; never raises. The wait until the next one. (A
        burst's next batch follows through the loop, not at once in this thread: running them
        back to back here starved the loop of the interpreter, and with it the lease renewal,
        until the term ran out; the next term judges lateness afresh, so the rest of the burst
        was recorded missed.)"""
        if self.state in (STATE_STOPPED, STATE_PAUSED):
            return None  # stopped: a wakeup queued before the shutdown; this scheduler is done
        try:
            with self._jobstores_lock:  # no job change lands in the middle of a wakeup
                try:
                    next_run = self._path.wakeup(datetime.now(UTC))
                finally:
                    self._path.end_wakeup()
        except NotLeaderError as exc:
            self._on_not_leader(str(exc))
            return None
        except REDIS_TROUBLE as exc:
            logger.warning(
                "job store unavailable (%s); retrying in %.1fs", exc, self._retry_seconds
            )
            return self._retry_seconds
        except Exception:
            logger.exception("processing due jobs failed; retrying in %.1fs", self._retry_seconds)
            return self._retry_seconds
        if next_run is None:
            return None
        wait = (next_run - datetime.now(UTC)).total_seconds()
        return min(max(wait, 0.0), float(TIMEOUT_MAX))
