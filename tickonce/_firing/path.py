"""The fire path: a fire's whole life, decide → commit → run → record, in one place.

The leader's scheduler (scheduler.py) calls ``wakeup`` when jobs are due; a run-now command
calls ``run_now``. A wakeup reads at most ``DUE_BATCH`` due jobs (jobstore.py), decides each
one's fire times (decide.py), plans their claims and ledger entries with the job's new state
and commits them (commit.py), the granted fires' bodies start as each group of plans is
answered (run.py), and every fire time ends as one ledger entry (record.py).
"""

from __future__ import annotations

import logging
from datetime import datetime

from apscheduler.job import Job

from tickonce._firing import decide, record
from tickonce._firing.commit import ClaimResult, FireCycle, FirePlan
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._firing.record import Claim, utcnow
from tickonce._firing.run import Executor, Start, new_slot
from tickonce._leadership.fencing import LeaderTerm

logger = logging.getLogger("tickonce.runs")


class FirePath:
    """Fires the jobs of one leader term: nothing runs without a claim, every fire is recorded."""

    def __init__(
        self,
        *,
        term: LeaderTerm,
        store: FencedRedisJobStore,
        cycle: FireCycle,
        executor: Executor,
        runner_id: str,
    ) -> None:
        self._term = term
        self._store = store
        self._cycle = cycle
        self.executor = executor
        self._runner_id = runner_id
        self._clock = decide.BacklogClock(utcnow())
        self._accepting = True
        # Granted fires of the group of plans just answered: started together, one hand-over
        # to the loop per group, not per job.
        self._granted: list[Start] = []
        cycle.after_send = self._start_granted

    # -- a wakeup ---------------------------------------------------------------------------

    def wakeup(self, now: datetime) -> datetime | None:
        """Fire what is due at ``now``; returns the store's next run time afterwards (at or
        before ``now`` when more is due: a burst is taken in batch after batch).

        Raises NotLeaderError if this term is over, before or while it writes anything.
        """
        epoch = self._term.require()
        jobs, more_due = self._store.due_batch(now)
        judged_at = self._clock.begin(now, more_due=more_due)
        steps = 0
        for job in jobs:
            if steps >= decide.WAKEUP_BUDGET:
                break  # the rest are still due: the next wakeup follows at once
            times = decide.overdue(job, now, decide.CHUNK + 1)
            steps += len(times)
            if not times:
                continue  # moved by a change since it was read: not due
            if len(times) > decide.CHUNK:  # far behind: decide a chunk, move past it
                decision = decide.backlog_chunk(job, times[:-1], judged_at)
                job._modify(next_run_time=times[-1])
            else:
                decision = decide.due(job, times, judged_at)
                next_run = job.trigger.get_next_fire_time(times[-1], now)
                job._modify(next_run_time=next_run)
            if decision.missed:
                logger.warning(
                    "job %s: %d fire time(s) missed, the first by %s",
                    job.id,
                    len(decision.missed),
                    judged_at - decision.missed[0],
                )
            self._plan(job, epoch, now, decision, move=True)
            self._cycle.completed()
        return self._cycle.flush()

    def end_wakeup(self) -> None:
        """A wakeup is over, done or failed (see ``FireCycle.end_wakeup``)."""
        self._cycle.end_wakeup()

    # -- a run-now --------------------------------------------------------------------------

    def run_now(self, job: Job, command_id: str, requested_at: datetime) -> str:
        """Run ``job`` once now for a run-now command, through the same claim and ledger.

        Claimed by the command's id, so applying the command again never runs it twice.
        Returns what happened, for the command's answer.
        """
        epoch = self._term.require()
        at_once = decide.Decision(to_run=[requested_at])
        verdicts = self._plan(job, epoch, utcnow(), at_once, move=False, manual=command_id)
        self._cycle.flush()  # at once: a run-now is not part of a wakeup
        return {
            ClaimResult.GRANTED: "started",
            ClaimResult.TAKEN: "already started by an earlier attempt of this command",
            ClaimResult.FULL: f"skipped: {record.refused_reason(job.max_instances)}",
            ClaimResult.NOT_DURABLE: f"not run: the claim was {self._cycle.shortfall}",
        }[verdicts[0]]

    # -- planning ---------------------------------------------------------------------------

    def _plan(
        self,
        job: Job,
        epoch: int,
        now: datetime,
        decided: decide.Decision,
        *,
        move: bool,
        manual: str = "",
    ) -> list[ClaimResult]:
        """Plan claims for ``decided``'s fire times to run and ledger entries for those that
        will not; with ``move`` (a wakeup) also the job's new state. The granted runs start
        when the plan is answered. Returns the list their verdicts are put in then."""
        if not self._accepting:
            return []
        claims = [
            Claim(job.id, at, self._runner_id, epoch, now, manual=manual) for at in decided.to_run
        ]
        runs = [(claim, record.refused(claim, job.max_instances)) for claim in claims]
        unrun = [
            record.not_run(
                job.id, times, status, reason, runner=self._runner_id, epoch=epoch, now=now
            )
            for times, status, reason in decided.not_run
        ]
        slot = new_slot(self._runner_id)
        verdicts: list[ClaimResult] = []

        def answered(results: list[ClaimResult], sent: float) -> None:
            verdicts.extend(results)
            granted, not_durable = [], []
            for (claim, skipped), verdict in zip(runs, results, strict=True):
                if verdict is ClaimResult.GRANTED:
                    granted.append(claim)
                elif verdict is ClaimResult.NOT_DURABLE:
                    not_durable.append(claim)
                elif verdict is ClaimResult.FULL:
                    record.log_run(skipped)
            if granted:
                self._granted.append(Start(job, granted, slot, sent))
            if not_durable:  # claimed, and their slot taken: recorded, never run
                refusal = f"the claim was {self._cycle.shortfall}; the body did not run"
                self._granted.append(Start(job, not_durable, slot, sent, refusal))

        plan = FirePlan(
            job_id=job.id,
            epoch=epoch,
            runs=runs,
            unrun=unrun,
            limit=job.max_instances,
            slot=slot,
            slot_window_ms=int(self.executor.slot_window * 1000),
            on_done=answered,
            unrun_logged=record.log_run,
        )
        if move:  # the job moves past these fire times in the same step
            if job.next_run_time is None:
                plan.op = "remove"  # its trigger has no fire time left
            else:
                plan.op = "update"
                plan.state, plan.next_run = self._store.state_of(job)
        self._cycle.plan(plan)
        return verdicts

    def _start_granted(self) -> None:
        granted, self._granted = self._granted, []
        if granted:
            self.executor.start_soon(granted)

    # -- the term's end, and its bodies ------------------------------------------------------

    def stop_accepting(self) -> None:
        """The term is over: plan nothing more; plans never answered are left to the lost-run
        sweep."""
        self._accepting = False
        self._cycle.forget_unanswered()

    @property
    def running_fires(self) -> set[str]:
        """Fire ids claimed here whose ledger entry is not written yet, and those that may
        have been claimed (their plan's answer is still awaited)."""
        return self.executor.recording | self._cycle.unanswered_fires
