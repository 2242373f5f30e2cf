"""Every fire time ends as one ledger entry: succeeded, failed, skipped or missed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import redis

from services.core.contender import Contender
from services.core.registry import Registry, RunContext, current_run
from services.core.settings import Settings
from tests.support.ledger_checks import duplicates, gaps, read_evidence
from tests.support.redis_server import RedisServer


async def test_failures_overlaps_blocking_timeouts_and_sync_jobs_are_all_recorded(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    jobs = Registry()
    contexts: list[RunContext] = []
    blocked = False

    @jobs.job("interval", seconds=1, id="slow", coalesce=False, misfire_grace_time=30)
    async def slow() -> None:
        await asyncio.sleep(2.5)

    @jobs.job("interval", seconds=1, id="boom")
    async def boom() -> None:
        raise ValueError("boom")

    @jobs.job("interval", seconds=1, id="in_thread")
    def in_thread() -> None:
        contexts.append(current_run())

    @jobs.job("interval", seconds=1, id="blocker")
    async def blocker() -> None:
        nonlocal blocked
        if not blocked:
            blocked = True
            time.sleep(2.5)  # noqa: ASYNC251 - blocks the loop on purpose: others' fire times pass

    @jobs.job("interval", seconds=1, id="victim", coalesce=False, misfire_grace_time=1)
    async def victim() -> None: ...

    @jobs.job("interval", seconds=1, id="hang", timeout=0.5)
    async def hang() -> None:
        await asyncio.sleep(60)

    @jobs.job("interval", seconds=2, id="hang_sync", timeout=0.5)
    def hang_sync() -> None:
        time.sleep(1.2)  # cannot be interrupted: recorded at its timeout, slot held until done

    settings = make_settings(redis_server, jobs_modules=[])
    contender = Contender(settings, jobs, mode="scheduler")
    running = asyncio.create_task(contender.run())
    await asyncio.sleep(7)
    await contender.stop()
    await running

    def outcomes(job_id: str) -> Counter[str]:
        ledger = read_evidence(client, prefix, job_id).ledger
        times = [int(entry.scheduled_at.timestamp() * 1000) for entry in ledger]
        assert not duplicates(times) and not gaps(times), f"{job_id}: one entry per fire time"
        return Counter(f"{e.status}:{e.reason}" if e.reason else e.status for e in ledger)

    slow_outcomes = outcomes("slow")
    assert slow_outcomes["succeeded"] >= 1
    assert slow_outcomes["skipped:max_instances (1) reached"] >= 2

    boom_entries = read_evidence(client, prefix, "boom").ledger
    outcomes("boom")
    ran = [e for e in boom_entries if e.status not in ("missed", "skipped")]  # the block
    assert ran and all(
        (e.status, e.reason, e.error) == ("failed", "exception", "ValueError: boom") for e in ran
    )

    thread_entries = read_evidence(client, prefix, "in_thread").ledger
    assert {
        (c.job_id, c.scheduled_at.replace(microsecond=c.scheduled_at.microsecond // 1000 * 1000))
        for c in contexts
    } == {("in_thread", e.scheduled_at) for e in thread_entries if e.status == "succeeded"}, (
        "a sync job sees its own run context"
    )

    victim_outcomes = outcomes("victim")
    assert set(victim_outcomes) == {"succeeded"}, (
        f"a job blocking its own event loop must not delay other jobs: {victim_outcomes}"
    )
    long_blocks = [
        e
        for e in read_evidence(client, prefix, "blocker").ledger
        if e.duration_ms and e.duration_ms > 2000
    ]
    assert len(long_blocks) == 1 and long_blocks[0].status == "succeeded"

    for job_id in ("hang", "hang_sync"):
        hung = read_evidence(client, prefix, job_id).ledger
        assert hung and {(e.status, e.reason) for e in hung} <= {
            ("failed", "timeout"),
            ("skipped", "max_instances (1) reached"),
        }, hung
        assert any(e.reason == "timeout" for e in hung)
