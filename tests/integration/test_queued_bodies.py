"""A body still waiting for a free worker when its timeout passes is recorded as failed and
never starts afterwards: no fire runs after its ledger entry says it did not."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.support.leading import lead_for
from tests.support.ledger_checks import read_evidence
from tests.support.outcome_jobs import hang_sync, noted, slow
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import Registry


async def test_a_body_that_timed_out_waiting_for_a_worker_never_runs(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    jobs = Registry()
    jobs.job("interval", seconds=1, id="slow")(slow)  # holds the only worker 2.5 s at a time
    jobs.job("interval", seconds=1, id="hang_sync", timeout=0.5)(hang_sync)
    settings = make_settings(redis_server, jobs_modules=[], job_processes=1)
    await lead_for(settings, jobs, 7)

    recorded = {
        fire_ms(e.scheduled_at): e for e in read_evidence(client, prefix, "hang_sync").ledger
    }
    for start in noted(client, prefix, "hang_sync", "started"):
        entry = recorded[start["at"]]
        assert entry.finished_at is not None
        assert start["wall_ms"] <= fire_ms(entry.finished_at), (
            f"the fire at {entry.scheduled_at} started after it was recorded {entry.status}"
        )
    assert not noted(client, prefix, "hang_sync", "finished"), "a body ran past its timeout"
    timed_out = [e for e in recorded.values() if e.reason == "timeout"]
    assert len(timed_out) >= 3, f"expected fires queued behind 'slow' to time out: {recorded}"
