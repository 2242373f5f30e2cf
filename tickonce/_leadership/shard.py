"""One shard's leadership, as one process sees it: contend for the shard's lease; while it is
held, fire the shard's jobs and apply its commands; stop firing the moment the lease cannot be
proven.

With one shard (the default) this is the whole deployment's leadership. The process-wide parts
(membership, the body pool, which shards to contend for) are the contender's (contender.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
import redis.asyncio as aioredis

from tickonce._bodies.pool import BodyPool
from tickonce._config.settings import Settings
from tickonce._control.apply import Control
from tickonce._control.channel import CommandConsumer
from tickonce._exceptions import NotDurableError, NotLeaderError
from tickonce._firing.commit import FireCycle
from tickonce._firing.jobstore import FencedRedisJobStore
from tickonce._firing.path import FirePath
from tickonce._firing.record import Claim, RunLedger, utcnow
from tickonce._firing.run import Executor
from tickonce._firing.scheduler import LeaderScheduler
from tickonce._jobs.registry import DEFAULTS, Registry
from tickonce._jobs.retention import JobRetention
from tickonce._jobs.sync import sync_registered_jobs
from tickonce._leadership.fencing import LeaderTerm
from tickonce._leadership.lease import Lease
from tickonce._leadership.membership import live_members
from tickonce._storage.clients import REDIS_TROUBLE, sync_redis
from tickonce._storage.counters import LEASE_RENEWAL_FAILURES
from tickonce._storage.keys import Keys

logger = logging.getLogger("tickonce.leadership")

FORGET_EVERY_SECONDS = 30.0  # how often the leader looks for jobs that are gone to forget


class RedisWatch:
    """Whether Redis answers, logged once per outage, not once per failed call."""

    def __init__(self) -> None:
        self._down_since: float | None = None

    def trouble(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()
            logger.warning("Redis is not answering (%s); retrying", exc)

    def answers(self) -> None:
        if self._down_since is not None:
            down_for = asyncio.get_running_loop().time() - self._down_since
            logger.info("Redis answers again after %.1fs", down_for)
            self._down_since = None


@dataclass
class _LeaderRun:
    """What exists only while this process leads the shard."""

    scheduler: LeaderScheduler
    path: FirePath
    client: redis.Redis
    retention: JobRetention
    commands: asyncio.Task[None] | None = None  # once the start-up sync is done
    chores: asyncio.Task[None] | None = None  # the job sync running in a thread, if any


class Shard:
    """Leader election for one shard by lease with fencing epoch, with self-fencing and
    graceful hand-over.

    Guarantees: while it fires the shard's jobs, this process holds the shard's lease (it stops
    firing ``ttl/5`` before the lease could expire in Redis); every job store write and every
    claim it makes is checked against the shard's epoch in Redis, so a deposed leader cannot
    fire or move a schedule.
    """

    def __init__(
        self,
        settings: Settings,
        keys: Keys,
        registry: Registry,
        *,
        runner_id: str,
        client: aioredis.Redis,
        bodies: BodyPool,
        redis_watch: RedisWatch,
        stopping: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.number = keys.shard
        self.runner_id = runner_id
        self._registry = registry
        self._redis = client
        self._bodies = bodies
        self._watch = redis_watch
        self._stopping = stopping
        self._lease = Lease(client, keys, runner_id, settings.lease_ttl_ms, settings.durability)
        self._ledger = RunLedger(client, keys, settings.ledger_max_entries)
        self._of = f" of shard {keys.shard}" if keys.shards > 1 else ""  # for messages
        self._epoch_not_durable = False  # the last epoch taken was refused for too few replicas
        self._term: LeaderTerm | None = None
        self._leader: _LeaderRun | None = None
        self._retired: list[Executor] = []  # executors of earlier terms with bodies going
        self._fence_timer: asyncio.TimerHandle | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._unreported_renewal_failures = 0
        self._last_sweep = 0.0
        self._last_sync = 0.0
        self._last_forget = 0.0
        # Observability (also used by tests): loop-clock times.
        self.last_renewal_sent: float | None = None
        self.fenced_at: float | None = None

    @property
    def is_leader(self) -> bool:
        return self._term is not None and self._term.active

    @property
    def contending(self) -> bool:
        """Holding a term (possibly one about to be fenced): no acquisition is due."""
        return self._term is not None

    @property
    def epoch(self) -> int | None:
        return self._term.current_epoch() if self._term else None

    @property
    def busy(self) -> bool:
        """Bodies of earlier terms are still running."""
        return any(executor.busy for executor in self._retired)

    def definitions_changed(self) -> None:
        self._last_sync = 0.0

    async def chores(self, now: float) -> None:
        """The leader's periodic work, due or not, called on every contention pass."""
        if self.is_leader and now - self._last_sweep >= self.settings.lease_ttl_seconds:
            self._last_sweep = now
            await self._record_lost_runs()
        if self.is_leader and now - self._last_sync >= self.settings.member_window_seconds:
            self._last_sync = now
            self._housekeep(now)
        await self._report_renewal_failures()

    async def keep_slots(self) -> None:
        """Bodies of this and earlier terms keep their running slots (or are stopped)."""
        for executor in self._executors():
            await executor.keep_slots()
        self._retired = [executor for executor in self._retired if executor.busy]

    async def hand_over(self, reason: str) -> None:
        """Stop firing and give the lease up at once, for another process to take."""
        was_leader = self._term is not None
        self._fence(reason, release=False)
        if was_leader:
            try:
                await self._lease.release()
                logger.info("released the lease%s for another contender to take", self._of)
            except REDIS_TROUBLE as exc:
                logger.warning("could not release the lease%s (%s); it expires", self._of, exc)

    async def drain(self, grace: float) -> None:
        """Wait for jobs still running from earlier terms, up to ``grace``."""
        await asyncio.gather(*(executor.drain(grace) for executor in self._retired))
        self._retired = [executor for executor in self._retired if executor.busy]

    # -- leadership ---------------------------------------------------------------------------

    async def try_acquire(self) -> None:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            epoch = await self._lease.acquire()
        except NotDurableError as exc:
            if not self._epoch_not_durable:  # once per spell, not every retry
                logger.warning("%s: no leader until replicas acknowledge again", exc)
            self._epoch_not_durable = True
            return
        self._epoch_not_durable = False
        if epoch is None:
            return
        term = LeaderTerm(epoch, self._valid_until(sent), loop.time)
        self._term = term
        self.last_renewal_sent = sent
        self._arm_fence_timer(term)
        logger.info("became leader%s with epoch %d", self._of, epoch)
        self._renewing = loop.create_task(self._keep_renewing(term))
        try:
            self._leader = self._start_scheduler(term)
        except Exception as exc:
            logger.warning("could not start the scheduler as leader (%s); stepping down", exc)
            self._fence("scheduler did not start")

    async def _keep_renewing(self, term: LeaderTerm) -> None:
        """Renew the lease every renew interval while ``term`` lasts: a task of its own, so
        that no other chore of the contender's pass (sweeps, heartbeats, slot refreshes, each
        slower while a burst is being worked through) delays a renewal."""
        while term is self._term and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.renew_interval)
            if term is not self._term or self._stopping.is_set():
                return
            try:
                await self._renew()
                self._watch.answers()
            except REDIS_TROUBLE as exc:
                self._watch.trouble(exc)

    async def _renew(self) -> None:
        term = self._term
        assert term is not None
        loop = asyncio.get_running_loop()
        sent = loop.time()
        try:
            renewed = await self._lease.renew()
        except REDIS_TROUBLE:
            self._unreported_renewal_failures += 1
            raise
        if term is not self._term:
            return
        if not renewed:
            self._unreported_renewal_failures += 1
            self._fence("the lease was lost (another contender holds it)")
        elif not term.active:
            self._fence("renewal arrived after the term ended")
        else:
            term.extend(self._valid_until(sent))
            self.last_renewal_sent = sent
            self._arm_fence_timer(term)

    def _valid_until(self, sent: float) -> float:
        return sent + self.settings.lease_ttl_seconds - self.settings.fence_margin

    def _arm_fence_timer(self, term: LeaderTerm) -> None:
        if self._fence_timer is not None:
            self._fence_timer.cancel()
        loop = asyncio.get_running_loop()
        self._fence_timer = loop.call_at(term.valid_until, self._on_deadline, term)

    def _on_deadline(self, term: LeaderTerm) -> None:
        if term is self._term:
            self._fence("could not renew the lease in time")

    def _fence(self, reason: str, *, release: bool = True) -> None:
        """Stop firing now. Idempotent; running jobs go on and are drained later."""
        term, self._term = self._term, None
        if term is None:
            return
        if self._renewing is not None and self._renewing is not asyncio.current_task():
            self._renewing.cancel()
        self._renewing = None
        term.end()
        if self._fence_timer is not None:
            self._fence_timer.cancel()
            self._fence_timer = None
        self.fenced_at = asyncio.get_running_loop().time()
        level = logging.INFO if self._stopping.is_set() else logging.WARNING
        logger.log(level, "stopped firing jobs%s (epoch %d): %s", self._of, term.epoch, reason)
        leader, self._leader = self._leader, None
        if leader is not None:
            if leader.commands is not None:
                leader.commands.cancel()
            leader.scheduler.pause()
            leader.path.stop_accepting()
            leader.scheduler.shutdown(wait=False)
            self._retired.append(leader.path.executor)
        if release and not self._stopping.is_set():
            asyncio.get_running_loop().create_task(self._release_quietly())

    async def _release_quietly(self) -> None:
        with contextlib.suppress(*REDIS_TROUBLE):
            await self._lease.release()

    def _start_scheduler(self, term: LeaderTerm) -> _LeaderRun:
        self._bodies.prestart()
        self._last_sync = asyncio.get_running_loop().time()  # the start-up sync below
        client = sync_redis(self.settings)
        retention = JobRetention(client, self.keys, self.settings.deleted_job_history_seconds)
        loop = asyncio.get_running_loop()

        def fence_soon(reason: str) -> None:  # from the firing thread, which learns it first
            loop.call_soon_threadsafe(self._fence, reason)

        cycle = FireCycle(
            client,
            self.keys,
            term,
            self.settings.ledger_max_entries,
            on_stale_epoch=fence_soon,
            durability=self.settings.durability,
        )
        executor = Executor(
            loop=loop,
            client=self._redis,
            keys=self.keys,
            ledger=self._ledger,
            registry=self._registry,
            bodies=self._bodies,
            slot_window_seconds=self.settings.member_window_seconds,
            slot_margin_seconds=self.settings.lease_ttl_seconds,
        )
        store = FencedRedisJobStore(client, self.keys, term)
        path = FirePath(
            term=term, store=store, cycle=cycle, executor=executor, runner_id=self.runner_id
        )
        scheduler = LeaderScheduler(
            path=path,
            on_not_leader=fence_soon,
            retry_seconds=self.settings.standby_retry_interval,
            jobstores={"default": store},
            job_defaults=DEFAULTS,
        )
        scheduler.start(paused=True)
        leader = _LeaderRun(scheduler, path, client, retention)
        leader.chores = asyncio.get_running_loop().create_task(self._begin_firing(leader))
        return leader

    async def _begin_firing(self, leader: _LeaderRun) -> None:
        """Bring the job store in line with the code, then fire and take commands.

        The sync runs in a thread: with thousands of jobs to add it takes seconds, and the
        lease must keep being renewed on the loop meanwhile (done on the loop, a long sync
        outlived the term, and every new leader started over).
        """
        try:
            await asyncio.to_thread(self._sync_jobs, leader, forget=False)
        except Exception as exc:
            if self._leader is leader:  # else its term ended meanwhile
                logger.warning("could not start the scheduler as leader (%s); stepping down", exc)
                self._fence("scheduler did not start")
            return
        if self._leader is not leader:
            return  # the term ended meanwhile
        leader.scheduler.resume()
        consumer = CommandConsumer(
            self._redis,
            self.keys,
            self.runner_id,
            Control(leader.scheduler, self._registry, leader.retention).apply,
            block_ms=int(self.settings.contender_redis_timeout * 500),
        )
        leader.commands = asyncio.get_running_loop().create_task(self._serve_commands(consumer))

    def _sync_jobs(self, leader: _LeaderRun, *, forget: bool) -> None:
        """Sync the job store with the code (and, with ``forget``, sweep the history of jobs
        that are gone). Runs in a thread; APScheduler's job store lock keeps it apart from
        the wakeups."""
        sync_registered_jobs(
            leader.scheduler,
            self._registry,
            leader.client,
            self.keys,
            runner_id=self.runner_id,
            window_ms=int(self.settings.member_window_seconds * 1000),
        )
        if forget:
            leader.retention.sweep()

    def _housekeep(self, now: float) -> None:
        """The leader's periodic chores: sync the job store with the code again (changes
        deferred earlier, jobs of members that left) and, less often, forget jobs that are
        gone. In a thread, one pass at a time, so that no pass holds up the lease renewal."""
        leader = self._leader
        if leader is None or leader.commands is None:
            return  # not leading, or still starting
        if leader.chores is not None and not leader.chores.done():
            return
        forget = now - self._last_forget >= FORGET_EVERY_SECONDS
        if forget:
            self._last_forget = now
        leader.chores = asyncio.get_running_loop().create_task(self._chores(leader, forget))

    async def _chores(self, leader: _LeaderRun, forget: bool) -> None:
        try:
            await asyncio.to_thread(self._sync_jobs, leader, forget=forget)
        except NotLeaderError as exc:
            if self._leader is leader:
                self._fence(str(exc))
        except REDIS_TROUBLE as exc:
            logger.warning("leader housekeeping could not reach Redis (%s); trying again", exc)
        except Exception:
            logger.exception("leader housekeeping failed; trying again later")

    async def _serve_commands(self, consumer: CommandConsumer) -> None:
        """Apply commands while leading; this task is cancelled when leadership ends, and
        nothing else ends it: a failure is logged and the commands are read again."""
        while True:
            try:
                await consumer.run()
            except NotLeaderError as exc:
                self._fence(str(exc))
                return
            except REDIS_TROUBLE as exc:
                # Unacknowledged commands stay pending and are claimed again, in order.
                logger.warning("reading commands failed (%s); retrying", exc)
            except Exception:
                logger.exception("serving commands failed; retrying")
            await asyncio.sleep(self.settings.standby_retry_interval)

    # -- housekeeping -------------------------------------------------------------------------

    async def _record_lost_runs(self) -> None:
        """Record fires claimed by runners that died before writing how they ended."""
        members = {
            member.runner_id
            for member in await live_members(
                self._redis, self.keys, int(self.settings.member_window_seconds * 1000)
            )
        }
        mine = self._leader.path.running_fires if self._leader else set()
        mine = mine.union(*(executor.recording for executor in self._retired))
        settle = timedelta(seconds=self.settings.lease_ttl_seconds)
        now = utcnow()

        def lost(claim: Claim) -> bool:
            if claim.runner == self.runner_id:
                return claim.fire_id not in mine and now - claim.claimed_at > settle
            return claim.runner not in members

        if written := await self._ledger.record_lost(lost):
            logger.warning("recorded %d run(s) whose runner stopped before finishing", written)

    def _executors(self) -> list[Executor]:
        current = [self._leader.path.executor] if self._leader else []
        return current + self._retired

    async def _report_renewal_failures(self) -> None:
        """Failures happen while Redis is away; they are counted once it answers again."""
        if self._unreported_renewal_failures:
            count, self._unreported_renewal_failures = self._unreported_renewal_failures, 0
            await self._redis.hincrby(self.keys.counters, LEASE_RENEWAL_FAILURES, count)
