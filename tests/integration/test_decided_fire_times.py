"""A fire time, once decided, stays decided: a one-off (date) job defined in code runs once,
whatever restarts, failovers and job syncs follow, and however long after."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import redis

from tests.support.leading import lead_for
from tests.support.once_jobs import runs_key, send_invoice
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings
from tickonce._firing.record import RunRecord
from tickonce._jobs.registry import Registry
from tickonce._storage.keys import Keys


def forget_expiring_keys(client: redis.Redis, prefix: str) -> None:
    """Days pass: every key with an expiry (claims, slots, outcomes) has expired."""
    for key in client.scan_iter(f"{prefix}*"):
        if client.pttl(key) > 0:
            client.delete(key)


@pytest.mark.parametrize("grace", [None, 1], ids=["no-grace", "grace-1s"])
async def test_a_date_job_runs_once_across_restarts_long_after(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    grace: int | None,
) -> None:
    run_date = datetime.now(UTC) + timedelta(seconds=1.5)
    jobs = Registry()
    jobs.job("date", run_date=run_date, id="invoice", misfire_grace_time=grace)(send_invoice)
    settings = make_settings(redis_server, jobs_modules=[])

    await lead_for(settings, jobs, 3.0)
    assert client.llen(runs_key(prefix, "invoice")) == 1, "the invoice is sent at its time"
    for _ in range(2):  # a redeploy a week later, then a failover
        forget_expiring_keys(client, prefix)
        await lead_for(settings, jobs, 2.0)

    ledger = [
        RunRecord.from_fields(f) for _, f in client.xrange(Keys(prefix).ledger("invoice")) or []
    ]
    assert [(e.status, e.reason) for e in ledger] == [("succeeded", "")], (
        "one fire time, one ledger entry"
    )
    assert client.llen(runs_key(prefix, "invoice")) == 1, "the invoice was sent again"
