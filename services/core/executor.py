"""Every fire goes through here: claim it, run the job body, record how it ended.

APScheduler hands an executor a job and its due run times just before it moves the job's next
run time in the store. The executor plans the claims; they are written in the same atomic step
as the job's next run time (claims.FireCycle), so a fire time is either claimed or still due
for the next leader: never silently lost.

Job bodies never run on the scheduler's event loop: each runs on a pool thread (an ``async
def`` body in an event loop of its own), so a job that blocks cannot delay firing or lease
renewal. ``max_instances`` is counted across the cluster: each batch of fires that runs holds
a running slot in Redis, refreshed while its body runs; a body whose slot can no longer be
proven held is stopped before the slot can expire and let another instance start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from services.core.claims import ClaimResult, FireCycle, FirePlan
from services.core.execution import UnknownTaskError, resolve
from services.core.fencing import LeaderTerm
from services.core.jobstore import task_of
from services.core.ledger import Claim, RunLedger, RunRecord, Status, utcnow
from services.core.policy import RunPolicy
from services.core.registry import Registry, RunContext, enter_run

logger = logging.getLogger("tickonce.runs")

# A fire time handed over later than this is being caught up (downtime, failover).
CATCH_UP_AFTER = timedelta(seconds=1)


class BodyStopped(Exception):
    """An async job body was cancelled from outside (timeout, lost slot, shutdown)."""


class BodyRun:
    """One job body on a pool thread: sync functions as they are, async ones in an event loop
    of their own. ``cancel()`` stops an async body at its next await; a sync body cannot be
    interrupted and runs to its end."""

    def __init__(
        self, func: Callable[..., Any], kwargs: dict[str, Any], context: RunContext
    ) -> None:
        self._func = func
        self._kwargs = kwargs
        self._context = context
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False
        self.started_at: datetime | None = None  # when the body really began, on its thread

    def start(self, pool: ThreadPoolExecutor) -> concurrent.futures.Future[Any]:
        context = contextvars.copy_context()
        context.run(enter_run, self._context)
        return pool.submit(context.run, self._run)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._loop is not None and self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)

    def _run(self) -> Any:
        self.started_at = utcnow()
        if not inspect.iscoroutinefunction(self._func):
            return self._func(**self._kwargs)
        loop = _thread_loop()

        async def body() -> Any:
            with self._lock:
                self._loop, self._task = loop, asyncio.current_task()
                if self._cancelled:
                    raise asyncio.CancelledError
            return await self._func(**self._kwargs)

        try:
            return loop.run_until_complete(loop.create_task(body()))
        except asyncio.CancelledError:
            raise BodyStopped from None
        finally:
            with self._lock:
                self._loop = self._task = None
            _cancel_leftovers(loop)


_pool_thread = threading.local()


def _thread_loop() -> asyncio.AbstractEventLoop:
    """The event loop of this pool thread, made once and reused by every async body it runs
    (making and closing a loop per run costs more than most bodies)."""
    loop: asyncio.AbstractEventLoop | None = getattr(_pool_thread, "loop", None)
    if loop is None or loop.is_closed():
        loop = _pool_thread.loop = asyncio.new_event_loop()
    return loop


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks a body started and left running do not outlive it."""
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))


@dataclass
class _Batch:
    """Fires of one job run one after another under one running slot."""

    job_id: str
    slot: str
    claims: list[Claim]
    valid_until: float  # loop time until which the slot is proven held
    body: BodyRun | None = None
    future: concurrent.futures.Future[Any] | None = None
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
        max_entries: int,
        slot_window_seconds: float,
        slot_margin_seconds: float,
        threads: ThreadPoolExecutor,
        on_stale_epoch: Callable[[str], None],
    ) -> None:
        super().__init__()
        self._term = term
        self._cycle = cycle
        self._ledger = ledger
        self._registry = registry
        self._runner = runner
        self._max_entries = max_entries
        self._slot_window = slot_window_seconds
        self._slot_margin = slot_margin_seconds
        self._threads = threads
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

        def not_run(at: datetime, status: Status, reason: str) -> tuple[Claim, RunRecord]:
            claim = Claim(job.id, at, self._runner, epoch, now)
            record = RunRecord(
                job.id, at, status, self._runner, epoch, finished_at=now, reason=reason
            )
            return claim, record

        skip_reason = "catch_up=skip" if policy.catch_up == "skip" else "coalesced"
        if job.coalesce and job.next_run_time and job.next_run_time < run_times[-1]:
            # APScheduler drops these silently; the ledger keeps one entry per fire time.
            earlier = job._get_run_times(run_times[-1])[:-1]
            unrun += [not_run(at, "skipped", skip_reason) for at in earlier[-self._max_entries :]]

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
                unrun.append(not_run(at, "missed", f"missed by {late.total_seconds():.3f}s"))
            elif policy.catch_up == "skip" and late > CATCH_UP_AFTER:
                unrun.append(not_run(at, "skipped", "catch_up=skip"))
            else:
                due.append(at)

        full = f"max_instances ({job.max_instances}) reached"
        self._plan(job, epoch, [not_run(at, "skipped", full) for at in due], unrun)

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
        verdicts = self._plan(job, epoch, [(claim, skipped)], [])
        self._cycle.flush()  # at once: a run-now is not part of a wakeup
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
                previous = batch.launched != claim.fire_id
                if previous and batch.future is not None and not batch.future.done():
                    # The previous body outlived its timeout and still holds the slot.
                    record = self._record_of(
                        claim,
                        utcnow(),
                        time.perf_counter(),
                        "skipped",
                        f"max_instances ({job.max_instances}) reached",
                        "",
                    )
                    await self._record(record)
                    continue
                record = await self._execute(job, claim, batch)
                last = index == len(batch.claims) - 1
                body_over = batch.future is None or batch.future.done()
                batch.finishing = last and body_over
                await self._record(record, release_slot=batch.slot if last and body_over else "")
        finally:
            await self._after_body(batch)

    async def _after_body(self, batch: _Batch) -> None:
        """Give the slot back once the (last) body really ended, even after a timeout."""
        if batch.future is not None and not batch.future.done():
            await asyncio.wait([asyncio.wrap_future(batch.future)])
            with contextlib.suppress(redis.RedisError):  # else it expires once not refreshed
                await self._ledger.release_slot(batch.job_id, batch.slot)
        if batch.deadline is not None:
            batch.deadline.cancel()
        self._batches.pop(batch.slot, None)

    def _launch(self, job: Job, claim: Claim, batch: _Batch) -> None:
        """Start the body of one claimed fire on a pool thread."""
        batch.launched, batch.began, batch.launched_at = (
            claim.fire_id,
            time.perf_counter(),
            utcnow(),
        )
        try:
            spec = resolve(task_of(job), self._registry)
        except UnknownTaskError as exc:
            batch.body, batch.future, batch.launch_error = None, None, str(exc)
            return
        context = RunContext(job.id, claim.scheduled_at, claim.epoch, self._runner)
        batch.body = BodyRun(spec.func, dict(job.kwargs), context)
        batch.future = batch.body.start(self._threads)
        batch.launch_error = ""

    async def _execute(self, job: Job, claim: Claim, batch: _Batch) -> RunRecord:
        if batch.launched != claim.fire_id:
            self._launch(job, claim, batch)
        started, began = batch.launched_at or utcnow(), batch.began
        policy = RunPolicy.of(job)
        if batch.body is None or batch.future is None:
            return self._record_of(
                claim, started, began, "failed", "unknown_task", batch.launch_error
            )
        body = batch.body
        waiting = asyncio.shield(asyncio.wrap_future(batch.future))
        try:
            if policy.timeout is not None:
                await asyncio.wait_for(waiting, policy.timeout)
            else:
                await waiting
        except TimeoutError:
            body.cancel()
            return self._record_of(
                claim,
                body.started_at or started,
                began,
                "failed",
                "timeout",
                f"did not finish within its timeout of {policy.timeout:g}s",
            )
        except BodyStopped:
            reason = batch.stop_reason or "cancelled"
            return self._record_of(
                claim, body.started_at or started, began, "failed", reason, f"stopped: {reason}"
            )
        except asyncio.CancelledError:
            body.cancel()
            record = self._record_of(
                claim,
                body.started_at or started,
                began,
                "failed",
                "cancelled",
                "cancelled: the shutdown grace period ran out before the job finished",
            )
            await self._record(record)
            raise
        except Exception as exc:
            logger.error('Job "%s" raised an exception', job, exc_info=exc)
            return self._record_of(
                claim,
                body.started_at or started,
                began,
                "failed",
                "exception",
                f"{type(exc).__name__}: {exc}",
            )
        return self._record_of(claim, body.started_at or started, began, "succeeded", "", "")

    def _record_of(
        self, claim: Claim, started: datetime, began: float, status: Status, reason: str, error: str
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
        if batch.body is not None:
            batch.body.cancel()

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
