"""A 1-second job that writes its own record of every run, independent of the ledger.

Catch-up on (catch_up="all", generous grace): every fire time runs, even after a failover,
so tests can demand that no time is lost as well as none run twice.
"""

from __future__ import annotations

import json

from tickonce._config.settings import get_settings
from tickonce._firing.record import fire_ms
from tickonce._jobs.registry import current_run, job
from tickonce._storage.clients import async_redis
from tickonce._storage.keys import Keys

PROBE = "probe"


def probe_key(prefix: str) -> str:
    return Keys(prefix).example(PROBE)


@job("interval", seconds=1, id=PROBE, catch_up="all", misfire_grace_time=30)
async def probe() -> None:
    run = current_run()
    settings = get_settings()
    record = {
        "job": run.job_id,
        "at": fire_ms(run.scheduled_at),
        "runner": run.runner,
        "epoch": run.epoch,
    }
    async with async_redis(settings) as client:  # REDIS_URL, or the master via Sentinels
        await client.rpush(probe_key(settings.key_prefix), json.dumps(record))
