"""Every fire time ends as one ledger entry: succeeded, failed, skipped or missed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

import redis

from tests.support.leading import lead_for
from tests.support.ledger_checks import duplicates, gaps, read_evidence
from tests.support.outcome_jobs import (
    blocker,
    boom,
    crash,
    hang,
    hang_sync,
    noted,
    slow,
    sync_context,
    victim,
)
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import Registry


async def test_failures_overlaps_blocking_timeouts_and_sync_jobs_are_all_recorded(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    jobs = Registry()
    every_second = partial(jobs.job, "interval", seconds=1)
    every_second(id="slow", catch_up="all", misfire_grace_time=30)(slow)
    every_second(id="boom")(boom)
    every_second(id="sync_context")(sync_context)
    every_second(id="blocker")(blocker)
    every_second(id="victim", catch_up="all", misfire_grace_time=1)(victim)
    every_second(id="hang", timeout=0.5)(hang)
    jobs.job("interval", seconds=2, id="hang_sync", timeout=0.5)(hang_sync)
    every_second(id="crash")(crash)

    settings = make_settings(redis_server, jobs_modules=[])
    await lead_for(settings, jobs, 7)

    def outcomes(job_id: str) -> Counter[str]:
        evidence = read_evidence(client, prefix, job_id)
        ledger, times = evidence.ledger, evidence.ledger_times
        assert not duplicates(times) and not gaps(times), f"{job_id}: one entry per fire time"
        return Counter(f"{e.status}:{e.reason}" if e.reason else e.status for e in ledger)

    slow_outcomes = outcomes("slow")
    assert slow_outcomes["succeeded"] >= 1
    assert slow_outcomes["skipped:max_instances (1) reached"] >= 2

    boom_entries = read_evidence(client, prefix, "boom").ledger
    outcomes("boom")
    assert boom_entries and all(
        (e.status, e.reason, e.error) == ("failed", "exception", "ValueError: boom")
        for e in boom_entries
    )

    ran = {entry["at"] for entry in noted(client, prefix, "sync_context", "ran")}
    succeeded = read_evidence(client, prefix, "sync_context").ledger
    assert ran and ran == {fire_ms(e.scheduled_at) for e in succeeded if e.status == "succeeded"}, (
        "a sync job sees its own run context"
    )

    victim_outcomes = outcomes("victim")
    assert set(victim_outcomes) == {"succeeded"}, (
        f"a job blocking its own event loop must not delay other jobs: {victim_outcomes}"
    )
    [blocked] = noted(client, prefix, "blocker", "blocked")
    [blocked_run] = [
        e
        for e in read_evidence(client, prefix, "blocker").ledger
        if fire_ms(e.scheduled_at) == blocked["at"]
    ]
    assert blocked_run.status == "succeeded"

    for job_id in ("hang", "hang_sync"):
        hung = read_evidence(client, prefix, job_id).ledger
        assert hung and {(e.status, e.reason) for e in hung} <= {
            ("failed", "timeout"),
            ("skipped", "max_instances (1) reached"),
        }, hung
        assert any(e.reason == "timeout" for e in hung)
        assert noted(client, prefix, job_id, "started"), f"{job_id} never started"
        assert not noted(client, prefix, job_id, "finished"), (
            f"{job_id} ran on past its timeout: its body was not stopped"
        )

    crashed = read_evidence(client, prefix, "crash").ledger
    assert crashed and {(e.status, e.reason) for e in crashed} == {("failed", "crashed")}
    assert all("exit code 13" in e.error for e in crashed), crashed
