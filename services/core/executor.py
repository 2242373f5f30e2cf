"""Every fire goes through here: claim it, run the job body, record how it ended.

APScheduler hands an executor a job and its due run times just before it moves the job's next
run time in the store. Claiming here, synchronously, means a fire time is either claimed
before the store moves past it or still due for the next leader: never silently lost.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import redis
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor, MaxInstancesReachedError
from apscheduler.job import Job
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from services.core.claims import ClaimResult, FireClaims
from services.core.execution import resolve
from services.core.fencing import LeaderTerm, NotLeaderError
from services.core.ledger import Claim, RunLedger, RunRecord, Status, utcnow
from services.core.registry import Registry, RunContext, enter_run

logger = logging.getLogger("tickonce.runs")

_FOREVER = timedelta(days=7)


class ClaimingExecutor(BaseExecutor):  # type: ignore[misc]
    """An asyncio executor where no job body runs without a claim and every fire is recorded.

    :param on_stale_epoch: called when Redis says a newer leader exists.
    """

    def __init__(
        self,
        *,
        term: LeaderTerm,
        claims: FireClaims,
        ledger: RunLedger,
        registry: Registry,
        runner: str,
        claim_ttl_seconds: float,
        max_entries: int,
        threads: ThreadPoolExecutor,
        on_stale_epoch: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._term = term
        self._claims = claims
        self._ledger = ledger
        self._registry = registry
        self._runner = runner
        self._claim_ttl = timedelta(seconds=claim_ttl_seconds)
        self._max_entries = max_entries
        self._threads = threads
        self._on_stale_epoch = on_stale_epoch
        self._tasks: set[asyncio.Task[None]] = set()
        self._running_fires: set[str] = set()
        self._accepting = True
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop = scheduler._eventloop

    def shutdown(self, wait: bool = True) -> None:
        # Running jobs are not cancelled here: the contender drains them within its grace.
        self._accepting = False

    def stop_accepting(self) -> None:
        self._accepting = False

    @property
    def running_fires(self) -> set[str]:
        """Fire ids claimed by this executor whose ledger entry is not written yet."""
        return set(self._running_fires)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("ClaimingExecutor.submit_job does the submitting")

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        epoch = self._term.current_epoch()
        if epoch is None or not self._accepting:
            # Not provably the leader: fire nothing. The fenced job store refuses the update
            # that follows, so these times stay due for whoever leads next.
            return
        now = utcnow()
        claim_ttl_ms = self._claim_ttl_ms(job)
        unrun: list[tuple[Claim, RunRecord]] = []

        def not_run(at: datetime, status: Status, reason: str) -> None:
            claim = Claim(job.id, at, self._runner, epoch, now)
            record = RunRecord(
                job.id, at, status, self._runner, epoch, finished_at=now, reason=reason
            )
            unrun.append((claim, record))

        if job.coalesce and job.next_run_time and job.next_run_time < run_times[-1]:
            # APScheduler drops these silently; the ledger keeps one entry per fire time.
            earlier = job._get_run_times(run_times[-1])[:-1]
            for at in earlier[-self._max_entries :]:
                not_run(at, "skipped", "coalesced")

        due = []
        for at in run_times:
            late = now - at
            if job.misfire_grace_time is not None and late > timedelta(
                seconds=job.misfire_grace_time
            ):
                self._logger.warning('Run time of job "%s" was missed by %s', job, late)
                self._scheduler._dispatch_event(
                    JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, at)
                )
                not_run(at, "missed", f"missed by {late.total_seconds():.3f}s")
            else:
                due.append(at)

        max_reached = False
        if due:
            with self._lock:
                if self._instances[job.id] >= job.max_instances:
                    max_reached = True
                    for at in due:
                        not_run(at, "skipped", f"max_instances ({job.max_instances}) reached")
                else:
                    claimed = self._claim_all(job, due, epoch, now, claim_ttl_ms)
                    if claimed:
                        self._instances[job.id] += 1
                        self._spawn(job, claimed)

        self._record_unrun(job, unrun, claim_ttl_ms)
        if max_reached:
            raise MaxInstancesReachedError(job)  # APScheduler logs and emits its usual event

    def run_manual(self, job: Job, command_id: str, requested_at: datetime) -> str:
        """Run ``job`` once now for a run-now command, through the same claim and ledger.

        Claimed by the command's id, so applying the command again never runs it twice.
        Returns what happened, for the command's answer.
        """
        epoch = self._term.require()
        now = utcnow()
        claim = Claim(job.id, requested_at, self._runner, epoch, now, manual=command_id)
        ttl_ms = self._claim_ttl_ms(job)
        with self._lock:
            if self._instances[job.id] >= job.max_instances:
                reason = f"max_instances ({job.max_instances}) reached"
                record = RunRecord(
                    job.id,
                    requested_at,
                    "skipped",
                    self._runner,
                    epoch,
                    finished_at=now,
                    reason=reason,
                    manual=command_id,
                )
                self._record_unrun(job, [(claim, record)], ttl_ms)
                return f"skipped: {reason}"
            result = self._claims.claim(claim, ttl_ms)
            if result is ClaimResult.STALE_EPOCH:
                self._on_stale_epoch("claim refused: epoch is no longer current")
                raise NotLeaderError(f"epoch {epoch} is no longer current")
            if result is ClaimResult.TAKEN:
                return "already started by an earlier attempt of this command"
            self._running_fires.add(claim.fire_id)
            self._instances[job.id] += 1
            self._spawn(job, [claim])
        return "started"

    def _claim_ttl_ms(self, job: Job) -> int:
        if job.misfire_grace_time is None:
            ttl = max(self._claim_ttl, _FOREVER)
        else:
            ttl = max(self._claim_ttl, 2 * timedelta(seconds=job.misfire_grace_time))
        return int(ttl.total_seconds() * 1000)

    def _claim_all(
        self, job: Job, due: list[datetime], epoch: int, now: datetime, ttl_ms: int
    ) -> list[Claim]:
        claimed = []
        for at in due:
            claim = Claim(job.id, at, self._runner, epoch, now)
            try:
                result = self._claims.claim(claim, ttl_ms)
            except redis.RedisError as exc:
                logger.warning(
                    "claim for job %s at %s got no answer (%s); will retry",
                    job.id,
                    at.isoformat(),
                    exc,
                )
                self._term.mark_uncertain(job.id)
                break
            if result is ClaimResult.GRANTED:
                claimed.append(claim)
                self._running_fires.add(claim.fire_id)
            elif result is ClaimResult.STALE_EPOCH:
                self._on_stale_epoch(f"claim refused: epoch {epoch} is no longer current")
                break
            else:
                logger.debug("job %s at %s already claimed elsewhere", job.id, at.isoformat())
        return claimed

    def _record_unrun(self, job: Job, unrun: list[tuple[Claim, RunRecord]], ttl_ms: int) -> None:
        try:
            results = self._claims.record_unrun(unrun, ttl_ms)
        except redis.RedisError as exc:
            logger.warning(
                "could not record %d unrun fire(s) of job %s: %s", len(unrun), job.id, exc
            )
            self._term.mark_uncertain(job.id)
            return
        for (_, record), result in zip(unrun, results, strict=True):
            if result is ClaimResult.GRANTED:
                log_run(record)
            elif result is ClaimResult.STALE_EPOCH:
                self._on_stale_epoch("claim refused: epoch is no longer current")
                return

    def _spawn(self, job: Job, claims: list[Claim]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(self._run_claimed(job, claims))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_claimed(self, job: Job, claims: list[Claim]) -> None:
        try:
            for claim in claims:
                record = await self._execute(job, claim)
                await self._record(record)
                self._running_fires.discard(claim.fire_id)
        finally:
            with self._lock:
                self._instances[job.id] -= 1
                if self._instances[job.id] <= 0:
                    del self._instances[job.id]

    async def _execute(self, job: Job, claim: Claim) -> RunRecord:
        task = job.args[0] if job.args else job.id
        started = utcnow()
        began = time.perf_counter()
        status: Status = "succeeded"
        reason = error = ""
        try:
            spec = resolve(task, self._registry)
            enter_run(RunContext(job.id, claim.scheduled_at, claim.epoch, self._runner))
            if spec.is_async:
                await spec.func(**job.kwargs)
            else:
                context = contextvars.copy_context()
                assert self._loop is not None
                await self._loop.run_in_executor(
                    self._threads, functools.partial(context.run, spec.func, **job.kwargs)
                )
        except asyncio.CancelledError:
            status, reason = "failed", "cancelled"
            error = "cancelled: the shutdown grace period ran out before the job finished"
            await self._record(self._finished(claim, started, began, status, reason, error))
            self._running_fires.discard(claim.fire_id)
            raise
        except Exception as exc:
            status, reason, error = "failed", "exception", f"{type(exc).__name__}: {exc}"
            logger.exception('Job "%s" raised an exception', job)
        return self._finished(claim, started, began, status, reason, error)

    def _finished(
        self, claim: Claim, started: datetime, began: float, status: Status, reason: str, error: str
    ) -> RunRecord:
        return RunRecord(
            job_id=claim.job_id,
            scheduled_at=claim.scheduled_at,
            status=status,
            runner=self._runner,
            epoch=claim.epoch,
            started_at=started,
            finished_at=utcnow(),
            reason=reason,
            error=error,
            duration_ms=(time.perf_counter() - began) * 1000,
            manual=claim.manual,
        )

    async def _record(self, record: RunRecord) -> None:
        # A finished run is recorded even through a Redis outage: retry until it lands. Until
        # then the fire stays in running_fires, so no leader records it as lost meanwhile.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(redis.RedisError),
            wait=wait_exponential(multiplier=0.1, max=5),
            reraise=True,
        ):
            with attempt:
                if await self._ledger.finish(record):
                    log_run(record)

    async def drain(self, grace: float) -> None:
        """Wait for running jobs up to ``grace``, then cancel the rest (recorded as failed)."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)


def log_run(record: RunRecord) -> None:
    """One line per fire time, with everything an operator greps for."""
    level = logging.INFO if record.status == "succeeded" else logging.WARNING
    duration = "" if record.duration_ms is None else f" duration_ms={record.duration_ms:.1f}"
    detail = f" reason={record.reason}" if record.reason else ""
    manual = " manual" if record.manual else ""
    fields = {key: value for key, value in record.fields().items() if value != ""}
    logger.log(
        level,
        "run job=%s scheduled_at=%s status=%s%s%s runner=%s epoch=%d%s",
        record.job_id,
        record.scheduled_at.isoformat(),
        record.status,
        detail,
        duration,
        record.runner,
        record.epoch,
        manual,
        extra={"run": fields},  # structured, for LOG_FORMAT=json
    )
