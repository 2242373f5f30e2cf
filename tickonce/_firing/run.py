"""Run: the bodies of claimed fires, each in a worker process, under a running slot.

Job bodies never run in the scheduler's process: each runs in a worker process (bodies/), so
a job that blocks or holds the GIL cannot delay firing or lease renewal, and any body, sync or
async, can be stopped (timeout, lost slot, shutdown). ``max_instances`` is counted across the
cluster: each batch of fires that runs holds a running slot in Redis (taken by the commit),
refreshed while its body runs; a body whose slot can no longer be proven held is stopped before
the slot can expire and let another instance start. Every run ends as one ledger entry
(record.py), written even through a Redis outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import redis.asyncio as aioredis
from apscheduler.job import Job
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from tickonce._bodies.pool import BodyPool, BodyRun
from tickonce._bodies.worker import BodyRef
from tickonce._exceptions import UnknownTaskError
from tickonce._firing import record
from tickonce._firing.outcome import Reason, Status
from tickonce._firing.record import Claim, RunLedger, RunRecord, utcnow
from tickonce._firing.tokens import token
from tickonce._jobs.policy import RunPolicy
from tickonce._jobs.registry import Registry, RunContext
from tickonce._jobs.tasks import resolve, task_of
from tickonce._storage.clients import REDIS_TROUBLE, text
from tickonce._storage.keys import Keys

logger = logging.getLogger("tickonce.runs")


# Keep running slots alive; report the ones that are gone (expired while Redis was out of
# reach), whose bodies must stop. KEYS: running sets. ARGV: window ms, then one member per key.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[i + 1]) then
    redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 1])
  else
    table.insert(lost, ARGV[i + 1])
  end
end
return lost
"""


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


async def refresh_slots(
    client: aioredis.Redis, keys: Keys, slots: Sequence[tuple[str, str]], window_ms: int
) -> set[str]:
    """Extend running slots (job id, member) by ``window_ms``; the members that are gone."""
    lost = await client.register_script(_REFRESH)(
        keys=[keys.running(job_id) for job_id, _ in slots],
        args=[window_ms, *(member for _, member in slots)],
    )
    return {text(member) for member in lost}


class Start(NamedTuple):
    """Granted fires of one job to run under one slot (taken at ``sent``, loop time); with a
    ``refusal``, claimed fires that must not run, recorded as failed with it."""

    job: Job
    claims: list[Claim]
    slot: str
    sent: float
    refusal: str = ""


def new_slot(runner: str) -> str:
    """A running slot's member: its runner, so a reader can tell whose it is."""
    return f"{runner}#{token()}"


class Executor:
    """Runs granted fires on the scheduler's loop, keeps their slots, records how they end."""

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        client: aioredis.Redis,
        keys: Keys,
        ledger: RunLedger,
        registry: Registry,
        bodies: BodyPool,
        slot_window_seconds: float,
        slot_margin_seconds: float,
    ) -> None:
        self._loop = loop
        self._client = client
        self._keys = keys
        self._ledger = ledger
        self._registry = registry
        self._bodies = bodies
        self.slot_window = slot_window_seconds
        self._slot_margin = slot_margin_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches: dict[str, _Batch] = {}
        self.recording: set[str] = set()
        """Fire ids claimed and started here whose ledger entry is not written yet."""

    @property
    def busy(self) -> bool:
        return bool(self._tasks or self._batches)

    def start_soon(self, starts: list[Start]) -> None:
        """``start`` each on the loop, from any thread (the firing thread gets the claims)."""
        for start in starts:
            self.recording.update(claim.fire_id for claim in start.claims)
        self._loop.call_soon_threadsafe(self._start_all, starts)

    def _start_all(self, starts: list[Start]) -> None:
        for start in starts:
            self._start(*start)

    def _start(
        self, job: Job, claims: list[Claim], slot: str, sent: float, refusal: str = ""
    ) -> None:
        """Run claimed fires one after another under their running slot (taken at ``sent``,
        loop time); with a ``refusal``, record them as failed instead and give the slot back."""
        if refusal:
            task = self._loop.create_task(self._refuse(claims, slot, refusal))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        batch = _Batch(
            job.id, slot, claims, valid_until=sent + self.slot_window - self._slot_margin
        )
        self._batches[slot] = batch
        self._arm_slot_deadline(batch)
        self._launch(job, claims[0], batch)  # now, not when the loop gets to the task
        task = self._loop.create_task(self._run_batch(job, batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_batch(self, job: Job, batch: _Batch) -> None:
        try:
            for index, claim in enumerate(batch.claims):
                ended = await self._execute(job, claim, batch)
                last = index == len(batch.claims) - 1
                batch.finishing = last
                await self._record(ended, release_slot=batch.slot if last else "")
        finally:
            await self._after_body(batch)

    async def _after_body(self, batch: _Batch) -> None:
        """Give the slot back once the (last) body really ended (after a shutdown cut it)."""
        if batch.run is not None and not batch.run.done:
            await asyncio.wait([batch.run.ended])
            with contextlib.suppress(*REDIS_TROUBLE):  # else it expires once not refreshed
                await self._client.zrem(self._keys.running(batch.job_id), batch.slot)
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
        context = RunContext(job.id, claim.scheduled_at, claim.epoch, claim.runner)
        batch.run = self._bodies.submit(BodyRef.of(spec.func), job.kwargs, context)
        batch.launch_error = ""

    async def _execute(self, job: Job, claim: Claim, batch: _Batch) -> RunRecord:
        if batch.launched != claim.fire_id:
            if batch.stop_reason:  # the batch's slot is lost: start nothing more under it
                reason = batch.stop_reason
                return record.ended(
                    claim,
                    started=utcnow(),
                    began=time.perf_counter(),
                    status=Status.FAILED,
                    reason=reason,
                )
            self._launch(job, claim, batch)
        started, began = batch.launched_at or utcnow(), batch.began
        policy = RunPolicy.of(job)
        run = batch.run
        if run is None:  # kept for code that defines it (a rolling deploy), not run by this
            return record.ended(
                claim,
                started=started,
                began=began,
                status=Status.SKIPPED,
                reason=Reason.UNKNOWN_TASK,
                error=batch.launch_error,
            )
        try:
            end = await asyncio.wait_for(asyncio.shield(run.ended), policy.timeout)
        except TimeoutError:
            self._bodies.stop(run, Reason.TIMEOUT)
            end = await asyncio.shield(run.ended)  # within the stop grace, or killed
            at = end.started_at or started
            if end.status == "succeeded":  # it ended just as its time ran out
                return record.ended(claim, started=at, began=began, status=Status.SUCCEEDED)
            return record.ended(
                claim,
                started=at,
                began=began,
                status=Status.FAILED,
                reason=Reason.TIMEOUT,
                error=f"did not finish within its timeout of {policy.timeout:g}s ({end.error})",
            )
        except asyncio.CancelledError:
            self._bodies.stop(run, Reason.CANCELLED)
            cancelled = record.ended(
                claim,
                started=started,
                began=began,
                status=Status.FAILED,
                reason=Reason.CANCELLED,
                error="cancelled: the shutdown grace period ran out before the job finished",
            )
            await self._record(cancelled)
            raise
        at = end.started_at or started
        if end.status == "succeeded":
            return record.ended(claim, started=at, began=began, status=Status.SUCCEEDED)
        if end.status == "stopped":
            reason = batch.stop_reason or Reason.CANCELLED
            return record.ended(
                claim,
                started=at,
                began=began,
                status=Status.FAILED,
                reason=reason,
                error=f"{reason}: {end.error}",
            )
        if end.status == "crashed":
            return record.ended(
                claim,
                started=at,
                began=began,
                status=Status.FAILED,
                reason=Reason.CRASHED,
                error=end.error,
            )
        logger.warning('job "%s" failed: %s', job.id, end.error)
        return record.ended(
            claim,
            started=at,
            began=began,
            status=Status.FAILED,
            reason=Reason.EXCEPTION,
            error=end.error,
        )

    async def _refuse(self, claims: list[Claim], slot: str, refusal: str) -> None:
        for index, claim in enumerate(claims):
            last = index == len(claims) - 1
            await self._record(
                record.not_durable(claim, refusal), release_slot=slot if last else ""
            )

    async def _record(self, ended: RunRecord, release_slot: str = "") -> None:
        """Record a finished run, even through a Redis outage: retry until it lands. Until then
        the fire stays in ``recording``, so no leader records it as lost meanwhile."""
        try:
            written = await self._ledger.finish(ended, release_slot=release_slot)
        except REDIS_TROUBLE:
            written = False
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(REDIS_TROUBLE),
                wait=wait_exponential(multiplier=0.1, max=5),
                reraise=True,
            ):
                with attempt:
                    written = await self._ledger.finish(ended, release_slot=release_slot)
        if written:
            record.log_run(ended)
        self.recording.discard(ended.fire_id)

    # -- keeping slots (called from the contender's loop) ----------------------------------

    async def keep_slots(self) -> None:
        """Refresh the running slots of these bodies (called every contender pass).

        A body whose slot can no longer be proven held is stopped by its deadline timer,
        before the slot could expire in Redis and let another instance start.
        """
        batches = [batch for batch in self._batches.values() if not batch.finishing]
        if not batches:
            return
        sent = self._loop.time()
        try:
            lost = await refresh_slots(
                self._client,
                self._keys,
                [(b.job_id, b.slot) for b in batches],
                int(self.slot_window * 1000),
            )
        except REDIS_TROUBLE:
            return
        for batch in batches:
            if batch.slot in lost:
                self._stop_body(batch)
            else:
                batch.valid_until = sent + self.slot_window - self._slot_margin
                self._arm_slot_deadline(batch)

    def _arm_slot_deadline(self, batch: _Batch) -> None:
        if batch.deadline is not None:
            batch.deadline.cancel()
        batch.deadline = self._loop.call_at(batch.valid_until, self._stop_body, batch)

    def _stop_body(self, batch: _Batch) -> None:
        if batch.stop_reason or batch.finishing or batch.slot not in self._batches:
            return
        batch.stop_reason = Reason.SLOT_LOST
        logger.warning(
            "job %s: its running slot can no longer be proven held; stopping its body",
            batch.job_id,
        )
        if batch.run is not None:
            self._bodies.stop(batch.run, Reason.SLOT_LOST)

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
