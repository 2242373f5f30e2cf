"""Every fire goes through here: claim it, run the job body, record how it ended.

APScheduler hands an executor a job and its due run times just before it moves the job's next
run time in the store. The executor plans the claims; they are written in the same atomic step
as the job's next run time (claims.FireCycle), so a fire time is either claimed or still due
for the next leader: never silently lost.

Job bodies never run in the scheduler's process: each runs in a worker process (bodies.py), so
a job that blocks or holds the GIL cannot delay firing or lease renewal, and any body, sync or
async, can be stopped (timeout, lost slot, shutdown). ``max_instances`` is counted across the
cluster: each batch of fires that runs holds a running slot in Redis, refreshed while its body
runs; a body whose slot can no longer be proven held is stopped before the slot can expire and
let another instance start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from services.core import catchup
from services.core.bodies import BodyPool, BodyRef, BodyRun
from services.core.claims import ClaimResult, FireCycle, FirePlan
from services.core.execution import UnknownTaskError, resolve
from services.core.fencing import LeaderTerm
from services.core.jobstore import task_of
from services.core.ledger import Claim, RunLedger, RunRecord, Status, utcnow
from services.core.policy import RunPolicy
from services.core.registry import Registry, RunContext

logger = logging.getLogger("tickonce.runs")

# A fire time handed over later than this is being caught up (downtime, failover).
CATCH_UP_AFTER = timedelta(seconds=1)


@dataclass
class _Batch:
    """Fires of one job run one after another under one running slot."""

    job_id: str
    slot: str
    claims: list[Claim]
    valid_until: float  # loop time until which the slot is proven held
    run: BodyRun | None = None
    stop_reason: str = ""
    deadline: asyncio.TimerHandle | None = None
    finishing: bool = False  # its slot is being given back: nothing to keep or stop
    launched: str = ""  # fire id of the body started last
    launched_at: datetime | None = None
    began: float = 0.0
    launch_error: str = ""


class ClaimingExecutor(BaseExecutor):  # type: ignore[misc]
    """An executor where no job body runs without a claim and every fire is recorded.

    :param on_stale_epoch: called when Redis says a newer leader exists.
    """

    def __init__(
        self,
        *,
        term: LeaderTerm,
        cycle: FireCycle,
        ledger: RunLedger,
        registry: Registry,
        runner: str,
        slot_window_seconds: float,
        slot_margin_seconds: float,
        bodies: BodyPool,
        on_stale_epoch: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._term = term
        self._cycle = cycle
        self._ledger = ledger
        self._registry = registry
        self._runner = runner
        self._slot_window = slot_window_seconds
        self._slot_margin = slot_margin_seconds
        self._bodies = bodies
        self._on_stale_epoch = on_stale_epoch
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[str, _Batch] = {}
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
        self._cycle.forget_unanswered()

    @property
    def running_fires(self) -> set[str]:
        """Fire ids claimed by this executor whose ledger entry is not written yet, and those
        it may have claimed (their plan's answer is still awaited)."""
        return self._running_fires | self._cycle.unanswered_fires

    @property
    def busy(self) -> bool:
        return bool(self._tasks or self._batches)

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        raise NotImplementedError("ClaimingExecutor.submit_job does the submitting")

    # -- firing (on the scheduler's loop, synchronously) -----------------------------------

    def submit_job(self, job: Job, run_times: list[datetime]) -> None:
        """Plan this wakeup's fires of ``job``; they are claimed (atomically with the job's
        next run time) when the wakeup ends, and the granted ones start then."""
        epoch = self._term.current_epoch()
        if epoch is None or not self._accepting:
            # Not provably the leader: fire nothing. The fenced job store refuses the update
            # that follows, so these times stay due for whoever leads next.
            return
        now = utcnow()
        policy = RunPolicy.of(job)
        unrun: list[tuple[Claim, RunRecord]] = []

        def not_run(times: list[datetime], status: Status, reason: str) -> None:
            if times:
                unrun.append(self._not_run(job, epoch, now, times, status, reason))

        skip_reason = "catch_up=skip" if policy.catch_up == "skip" else "coalesced"
        if job.coalesce and job.next_run_time and job.next_run_time < run_times[-1]:
            # APScheduler drops these silently; the ledger accounts for them in one entry (the
            # job store hands over at most catchup.CHUNK of them).
            not_run(job._get_run_times(run_times[-1])[:-1], "skipped", skip_reason)

        due, missed, skipped = [], [], []
        grace = job.misfire_grace_time
        judged_at = self._cycle.judged_at  # a backlog's own delay is not lateness
        for at in run_times:
            late = judged_at - at
            if grace is not None and late > timedelta(seconds=grace):
                self._logger.warning('Run time of job "%s" was missed by %s', job, late)
                self._scheduler._dispatch_event(
                    JobExecutionEvent(EVENT_JOB_MISSED, job.id, job._jobstore_alias, at)
                )
                missed.append(at)
            elif policy.catch_up == "skip" and late > CATCH_UP_AFTER:
                skipped.append(at)
            else:
                due.append(at)
        if len(missed) == 1:
            late_by = (judged_at - missed[0]).total_seconds()
            not_run(missed, "missed", f"missed by {late_by:.3f}s")
        else:
            not_run(missed, "missed", f"missed: more than {grace}s late")
        not_run(skipped, "skipped", "catch_up=skip")

        full = f"max_instances ({job.max_instances}) reached"
        self._plan(job, epoch, [self._not_started(job, epoch, at, now, full) for at in due], unrun)

    def catch_up(self, job: Job, times: list[datetime]) -> bool:
        """Plan a chunk of a job's overdue fire times as decided without running them (called
        by the job store for a job more than catchup.CHUNK behind, which then moves the job
        past them in the same plan). False when this process may not decide them."""
        epoch = self._term.current_epoch()
        if epoch is None or not self._accepting:
            return False
        now = utcnow()
        grace = job.misfire_grace_time
        judged_at = self._cycle.judged_at
        cutoff = judged_at - timedelta(seconds=grace) if grace is not None else None
        missed = [at for at in times if cutoff is not None and at < cutoff]
        rest = times[len(missed) :]
        reason = {
            "coalesce": "coalesced",
            "skip": "catch_up=skip",
            "all": f"catch_up=all: more than {catchup.CHUNK} overdue at once",
        }[RunPolicy.of(job).catch_up]
        unrun = []
        if missed:
            late = f"missed: more than {grace}s late"
            unrun.append(self._not_run(job, epoch, now, missed, "missed", late))
        if rest:
            unrun.append(self._not_run(job, epoch, now, rest, "skipped", reason))
        self._plan(job, epoch, [], unrun)
        return True

    def _not_run(
        self,
        job: Job,
        epoch: int,
        now: datetime,
        times: list[datetime],
        status: Status,
        reason: str,
    ) -> tuple[Claim, RunRecord]:
        return catchup.not_run(
            job.id, times, status, reason, runner=self._runner, epoch=epoch, now=now
        )

    def _not_started(
        self, job: Job, epoch: int, at: datetime, now: datetime, reason: str
    ) -> tuple[Claim, RunRecord]:
        """A fire to run, and its entry should it be refused (max_instances)."""
        claim = Claim(job.id, at, self._runner, epoch, now)
        record = RunRecord(
            job.id, at, "skipped", self._runner, epoch, finished_at=now, reason=reason
        )
        return claim, record

    def run_manual(self, job: Job, command_id: str, requested_at: datetime) -> str:
        """Run ``job`` once now for a run-now command, through the same claim and ledger.

        Claimed by the command's id, so applying the command again never runs it twice.
        Returns what happened, for the command's answer.
        """
        epoch = self._term.require()
        now = utcnow()
        claim = Claim(job.id, requested_at, self._runner, epoch, now, manual=command_id)
        full = f"max_instances ({job.max_instances}) reached"
        skipped = RunRecord(
            job.id,
            requested_at,
            "skipped",
            self._runner,
            epoch,
            finished_at=now,
            reason=full,
            manual=command_id,
        )
        # At once, not as part of a wakeup; under the job store lock, so that no job change
        # (a job sync runs in a thread) is taken for part of this plan meanwhile.
        with self._scheduler._jobstores_lock:
            verdicts = self._plan(job, epoch, [(claim, skipped)], [])
            self._cycle.flush()
        return {
            ClaimResult.GRANTED: "started",
            ClaimResult.TAKEN: "already started by an earlier attempt of this command",
            ClaimResult.FULL: f"skipped: {full}",
        }[verdicts[0]]

    def _plan(
        self,
        job: Job,
        epoch: int,
        runs: list[tuple[Claim, RunRecord]],
        unrun: list[tuple[Claim, RunRecord]],
    ) -> list[ClaimResult]:
        """Plan claims for ``runs`` (each with its record should the job be at max_instances)
        and records for ``unrun``; the granted runs start when the plan is flushed. Returns
        the list the runs' verdicts are put in then."""
        slot = new_slot(self._runner)
        verdicts: list[ClaimResult] = []

        def started(results: list[ClaimResult], sent: float) -> None:
            verdicts.extend(results)
            granted = []
            for (claim, skipped), verdict in zip(runs, results, strict=True):
                if verdict is ClaimResult.GRANTED:
                    granted.append(claim)
                    self._running_fires.add(claim.fire_id)
                elif verdict is ClaimResult.FULL:
                    log_run(skipped)
            if granted:
                self._start(job, granted, slot, sent)

        self._cycle.plan(
            FirePlan(
                job_id=job.id,
                epoch=epoch,
                runs=runs,
                unrun=unrun,
                limit=job.max_instances,
                slot=slot,
                slot_window_ms=int(self._slot_window * 1000),
                on_done=started,
                unrun_logged=log_run,
            )
        )
        return verdicts

    def _start(self, job: Job, claims: list[Claim], slot: str, sent: float) -> None:
        """Run claimed fires one after another under their running slot."""
        assert self._loop is not None
        batch = _Batch(
            job.id, slot, claims, valid_until=sent + self._slot_window - self._slot_margin
        )
        self._batches[slot] = batch
        self._arm_slot_deadline(batch)
        self._launch(job, claims[0], batch)  # now, not when the loop gets to the task
        task = self._loop.create_task(self._run_batch(job, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- running (tasks on the scheduler's loop; bodies on threads) ------------------------

    async def _run_batch(self, job: Job, batch: _Batch) -> None:
        try:
            for index, claim in enumerate(batch.claims):
                record = await self._execute(job, claim, batch)
                last = index == len(batch.claims) - 1
                batch.finishing = last
                await self._record(record, release_slot=batch.slot if last else "")
        finally:
            await self._after_body(batch)

    async def _after_body(self, batch: _Batch) -> None:
        """Give the slot back once the (last) body really ended (after a shutdown cut it)."""
        if batch.run is not None and not batch.run.done:
            await asyncio.wait([batch.run.ended])
            with contextlib.suppress(redis.RedisError):  # else it expires once not refreshed
                await self._ledger.release_slot(batch.job_id, batch.slot)
        if batch.deadline is not None:
            batch.deadline.cancel()
        self._batches.pop(batch.slot, None)

    def _launch(self, job: Job, claim: Claim, batch: _Batch) -> None:
        """Start the body of one claimed fire in a worker process."""
        batch.launched, batch.began, batch.launched_at = (
            claim.fire_id,
            time.perf_counter(),
            utcnow(),
        )
        try:
            spec = resolve(task_of(job), self._registry)
        except UnknownTaskError as exc:
            batch.run, batch.launch_error = None, str(exc)
            return
        context = RunContext(job.id, claim.scheduled_at, claim.epoch, self._runner)
        batch.run = self._bodies.submit(BodyRef.of(spec.func), job.kwargs, context)
        batch.launch_error = ""

    async def _execute(self, job: Job, claim: Claim, batch: _Batch) -> RunRecord:
        if batch.launched != claim.fire_id:
            if batch.stop_reason:  # the batch's slot is lost: start nothing more under it
                reason = batch.stop_reason
                return self._record_of(claim, utcnow(), time.perf_counter(), "failed", reason)
            self._launch(job, claim, batch)
        started, began = batch.launched_at or utcnow(), batch.began
        policy = RunPolicy.of(job)
        run = batch.run
        if run is None:  # kept for code that defines it (a rolling deploy), not run by this
            return self._record_of(
                claim, started, began, "skipped", "unknown_task", batch.launch_error
            )
        try:
            end = await asyncio.wait_for(asyncio.shield(run.ended), policy.timeout)
        except TimeoutError:
            self._bodies.stop(run, "timeout")
            end = await asyncio.shield(run.ended)  # within the stop grace, or killed
            if end.status == "succeeded":  # it ended just as its time ran out
                return self._record_of(claim, end.started_at or started, began, "succeeded")
            return self._record_of(
                claim,
                end.started_at or started,
                began,
                "failed",
                "timeout",
                f"did not finish within its timeout of {policy.timeout:g}s ({end.error})",
            )
        except asyncio.CancelledError:
            self._bodies.stop(run, "cancelled")
            record = self._record_of(
                claim,
                started,
                began,
                "failed",
                "cancelled",
                "cancelled: the shutdown grace period ran out before the job finished",
            )
            await self._record(record)
            raise
        at = end.started_at or started
        if end.status == "succeeded":
            return self._record_of(claim, at, began, "succeeded")
        if end.status == "stopped":
            reason = batch.stop_reason or "cancelled"
            return self._record_of(claim, at, began, "failed", reason, f"{reason}: {end.error}")
        if end.status == "crashed":
            return self._record_of(claim, at, began, "failed", "crashed", end.error)
        logger.warning('job "%s" failed: %s', job.id, end.error)
        return self._record_of(claim, at, began, "failed", "exception", end.error)

    def _record_of(
        self,
        claim: Claim,
        started: datetime,
        began: float,
        status: Status,
        reason: str = "",
        error: str = "",
    ) -> RunRecord:
        return RunRecord(
            job_id=claim.job_id,
            scheduled_at=claim.scheduled_at,
            status=status,
            runner=self._runner,
            epoch=claim.epoch,
            started_at=started if status != "skipped" else None,
            finished_at=utcnow(),
            reason=reason,
            error=error,
            duration_ms=(time.perf_counter() - began) * 1000 if status != "skipped" else None,
            manual=claim.manual,
        )

    async def _record(self, record: RunRecord, release_slot: str = "") -> None:
        """Record a finished run, even through a Redis outage: retry until it lands. Until then
        the fire stays in running_fires, so no leader records it as lost meanwhile."""
        try:
            written = await self._ledger.finish(record, release_slot=release_slot)
        except redis.RedisError:
            written = False
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(redis.RedisError),
                wait=wait_exponential(multiplier=0.1, max=5),
                reraise=True,
            ):
                with attempt:
                    written = await self._ledger.finish(record, release_slot=release_slot)
        if written:
            log_run(record)
        self._running_fires.discard(record.fire_id)

    # -- keeping slots (called from the contender's loop) ----------------------------------

    def keep_slots(self) -> None:
        """Refresh the running slots of this executor's bodies (called every contender pass).

        A body whose slot can no longer be proven held is stopped by its deadline timer,
        before the slot could expire in Redis and let another instance start.
        """
        batches = [batch for batch in self._batches.values() if not batch.finishing]
        if not batches or self._loop is None:
            return
        sent = self._loop.time()
        try:
            lost = self._cycle.refresh_slots(
                [(b.job_id, b.slot) for b in batches], int(self._slot_window * 1000)
            )
        except redis.RedisError:
            return
        for batch in batches:
            if batch.slot in lost:
                self._stop_body(batch)
            else:
                batch.valid_until = sent + self._slot_window - self._slot_margin
                self._arm_slot_deadline(batch)

    def _arm_slot_deadline(self, batch: _Batch) -> None:
        assert self._loop is not None
        if batch.deadline is not None:
            batch.deadline.cancel()
        batch.deadline = self._loop.call_at(batch.valid_until, self._stop_body, batch)

    def _stop_body(self, batch: _Batch) -> None:
        if batch.stop_reason or batch.finishing or batch.slot not in self._batches:
            return
        batch.stop_reason = "slot_lost"
        logger.warning(
            "job %s: its running slot can no longer be proven held; stopping its body",
            batch.job_id,
        )
        if batch.run is not None:
            self._bodies.stop(batch.run, "slot_lost")

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


def new_slot(runner: str) -> str:
    """A running slot's member: its runner, so a reader can tell whose it is."""
    return f"{runner}#{uuid.uuid4().hex[:12]}"


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
