"""Catch-up after downtime: missed fire times are coalesced, all run, or all skipped, and
every one of them is in the ledger with its status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import redis

from tests.support.leading import lead_for
from tests.support.ledger_checks import duplicates, fire_times, gaps, read_evidence
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._firing.record import RunRecord
from tickonce._jobs.registry import Registry

POLICIES = ("coalesce", "all", "skip")


async def work() -> None: ...


async def test_each_catch_up_policy_after_downtime(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    jobs = Registry()
    for policy in POLICIES:
        jobs.job(
            "interval", seconds=1, id=f"catch-{policy}", catch_up=policy, misfire_grace_time=60
        )(work)
    settings = make_settings(redis_server, jobs_modules=[])

    await lead_for(settings, jobs, 3.5)
    await asyncio.sleep(4)  # downtime: about four fire times pass with no scheduler
    restarted = time.time()
    await lead_for(settings, jobs, 2.5)

    def ledger(policy: str) -> list[RunRecord]:
        entries = read_evidence(client, prefix, f"catch-{policy}").ledger
        times = [time for entry in entries for time in fire_times(entry)]
        assert not duplicates(times) and not gaps(times), f"{policy}: one entry per fire time"
        return entries

    def missed(entries: list[RunRecord]) -> list[RunRecord]:
        """Entries of the fire times that passed while no scheduler ran, oldest first."""
        last_before = max(
            e.scheduled_at.timestamp()
            for e in entries
            if e.started_at and e.started_at.timestamp() < restarted
        )
        return sorted(
            (e for e in entries if last_before < e.scheduled_at.timestamp() <= restarted),
            key=lambda e: e.scheduled_at,
        )

    coalesced = missed(ledger("coalesce"))
    assert len(coalesced) == 2, coalesced
    assert (coalesced[0].status, coalesced[0].reason) == ("skipped", "coalesced")
    assert coalesced[0].count >= 2, "the earlier missed times, in one counted entry"
    assert coalesced[-1].status == "succeeded", "the newest missed time runs, once"

    everything = missed(ledger("all"))
    assert len(everything) >= 3
    assert {e.status for e in everything} == {"succeeded"}, "catch_up=all runs every one"

    skipped = [e for e in missed(ledger("skip")) if e.scheduled_at.timestamp() < restarted - 1]
    assert sum(e.count for e in skipped) >= 2
    assert {(e.status, e.reason) for e in skipped} == {("skipped", "catch_up=skip")}
