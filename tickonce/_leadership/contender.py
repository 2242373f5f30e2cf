"""Contend for leadership of the shards; lead the ones this process holds; wait as a hot
standby for the rest.

The same contender runs in the scheduler service and, in embedded mode, in every API worker.
With ``SCHEDULER_SHARDS=1`` (the default) there is one shard: one leader, the others standbys.
With more, the live contenders share the shards evenly: a free shard is taken at once by
anyone (so a dead replica's shards are taken over as soon as their leases expire), and a
contender holding two or more shards more than another live one hands the difference over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Literal

from tickonce._bodies.pool import BodyPool
from tickonce._config.settings import Settings
from tickonce._exceptions import ConfigError
from tickonce._jobs.registry import Registry
from tickonce._leadership.membership import Membership, live_members
from tickonce._leadership.shard import RedisWatch, Shard
from tickonce._storage.capabilities import check_redis
from tickonce._storage.clients import REDIS_TROUBLE, async_redis, runner_id, text
from tickonce._storage.keys import Keys
from tickonce._storage.layout import check_layout

logger = logging.getLogger("tickonce.leadership")

Mode = Literal["scheduler", "embedded"]


class Contender:
    """One process's contention for every shard, with the parts its shards share: the Redis
    client, the member entry and the pool of worker processes that run bodies."""

    def __init__(self, settings: Settings, registry: Registry, *, mode: Mode) -> None:
        self.settings = settings
        self.runner_id = runner_id()
        self.keys = Keys.of(settings)
        self._registry = registry
        self._mode = mode
        self._redis = async_redis(settings, timeout=settings.contender_redis_timeout)
        self._membership = Membership(
            self._redis, self.keys, self.runner_id, mode, int(settings.member_window_seconds * 1000)
        )
        self._bodies = BodyPool(
            settings.job_processes,
            stop_grace=settings.body_stop_grace,
            # The job modules, and the modules of jobs registered without them (embedded in
            # an app): imported once in the fork server, not by every new worker.
            preload=list(
                dict.fromkeys(
                    [*settings.jobs_modules, *(spec.func.__module__ for spec in registry.specs())]
                )
            ),
        )
        self._stopping = asyncio.Event()
        self._retiring = False  # the process is stopping: take no lease, give up those held
        self._woken = asyncio.Event()  # a pass is due now, not at the end of the wait
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watch = RedisWatch()
        self.shards = [
            Shard(
                settings,
                keys,
                registry,
                runner_id=self.runner_id,
                client=self._redis,
                bodies=self._bodies,
                redis_watch=self._watch,
                stopping=self._stopping,
            )
            for keys in self.keys.every_shard()
        ]
        self._layout_checked = False
        self._published = False  # this process's job definitions, as members see them
        self._handed_over: dict[int, float] = {}  # shard -> when this process gave it up
        self._last_balance = 0.0
        self._last_beat = 0.0
        # Observability (also used by the health check and tests): loop-clock times.
        self.last_pass: float | None = None  # the contention loop's last completed pass

    @property
    def is_leader(self) -> bool:
        """Leading at least one shard."""
        return any(shard.is_leader for shard in self.shards)

    @property
    def epoch(self) -> int | None:
        """The epoch of shard 0 while this process leads it (the only one, by default)."""
        return self.shards[0].epoch

    async def run(self) -> None:
        """Contend until ``stop()``; never raises for Redis trouble, it retries.

        :raises ConfigError: the deployment's data is laid out for another shard count.
        """
        logger.info(
            "contender %s started (%s mode, lease ttl %.1fs, %d shard(s))",
            self.runner_id,
            self._mode,
            self.settings.lease_ttl_seconds,
            len(self.shards),
        )
        loop = self._loop = asyncio.get_running_loop()
        if self._mode == "scheduler":  # a hot standby is ready to run bodies at once
            self._bodies.prestart()
        while not self._stopping.is_set():
            try:
                await self._pass(loop.time())
                self._watch.answers()
            except REDIS_TROUBLE as exc:
                self._watch.trouble(exc)
            for shard in self.shards:
                await shard.keep_slots()
            self.last_pass = loop.time()
            wait = (
                self.settings.renew_interval
                if all(shard.contending for shard in self.shards)
                else self.settings.standby_retry_interval
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), wait)
            self._woken.clear()

    async def _pass(self, now: float) -> None:
        if not self._layout_checked:
            try:
                await check_layout(self._redis, self.keys)
                await check_redis(self._redis)
            except ConfigError as exc:
                logger.error("%s", exc)
                raise
            self._layout_checked = True
        if not self._published:  # before leading: a leader syncs against what others define
            self._published = True
            definitions = {spec.id: spec.fingerprint for spec in self._registry.specs()}
            try:
                await self._membership.publish_jobs(definitions)
            except BaseException:
                self._published = False
                raise
        for shard in self.shards:
            if self._retiring:
                if shard.contending:
                    await shard.hand_over("the process is stopping")
            elif not shard.contending and self._may_take(shard.number, now):
                await shard.try_acquire()
        if now - self._last_beat >= self.settings.renew_interval:
            led = {shard.number: shard.epoch for shard in self.shards if shard.is_leader}
            await self._membership.beat(
                "leader" if led else "standby",
                led,
                retiring=self._retiring,
            )
            self._last_beat = now
        for shard in self.shards:
            await shard.chores(now)
        if len(self.shards) > 1 and now - self._last_balance >= self.settings.lease_ttl_seconds:
            self._last_balance = now
            await self._balance(now)

    def _may_take(self, shard: int, now: float) -> bool:
        """A free shard is taken, unless this process handed it over lately (for a contender
        with fewer shards to take); if none did within a ttl, it is taken back."""
        handed_over = self._handed_over.get(shard)
        return handed_over is None or now - handed_over > self.settings.lease_ttl_seconds

    async def _balance(self, now: float) -> None:
        """Hand shards over to the live contender leading the fewest, while this process leads
        two or more than it does.

        Counts come from the leases themselves, and only contenders heard from within half a
        ttl count (they beat three times per ttl): a contender that died is never handed a
        shard it cannot take (its announced shards, and its member entry, outlive it). Nor is
        one that is stopping (``retire``): it takes no lease while it drains.
        """
        members = await live_members(
            self._redis, self.keys, int(self.settings.lease_ttl_seconds * 500)
        )
        others = {m.runner_id for m in members if m.role != "retiring"} - {self.runner_id}
        if not others:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard in self.shards:
                pipe.get(shard.keys.lease)
            tokens = await pipe.execute()
        holders = [text(token).rsplit("#", 1)[0] for token in tokens if token]
        fewest = min(holders.count(member) for member in others)
        led = [shard for shard in self.shards if shard.is_leader]
        if len(led) - fewest < 2:
            return
        for shard in led[-((len(led) - fewest) // 2) :]:
            self._handed_over[shard.number] = now
            await shard.hand_over("handing over to a contender with fewer shards")

    def retire(self) -> None:
        """The process is stopping (its server got SIGTERM; ``stop()`` follows later): from the
        next pass on, take no lease and hand over those held. Running bodies finish as they
        would. Safe from a signal handler or any thread (the pass is asked for thread-safely)."""
        self._retiring = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._woken.set)

    def definitions_changed(self) -> None:
        """This process's code defines other jobs now (a job added or removed at run time):
        publish them again, and as leader, sync the job store with them at the next pass."""
        self._published = False
        for shard in self.shards:
            shard.definitions_changed()

    async def stop(self) -> None:
        """Stop firing, hand the leases over at once, let running jobs finish within the
        grace."""
        self._stopping.set()
        self._woken.set()
        for shard in self.shards:
            await shard.hand_over("shutting down")
        await self.drain(self.settings.shutdown_grace_seconds)
        with contextlib.suppress(*REDIS_TROUBLE):
            await self._membership.leave()
        await self._bodies.close()
        await self._redis.aclose()

    async def drain(self, grace: float) -> None:
        """Wait for jobs still running from earlier terms, up to ``grace``."""
        await asyncio.gather(*(shard.drain(grace) for shard in self.shards))
