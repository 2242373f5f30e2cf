"""A burst larger than one Lua call can carry (~8,000 ids through ``unpack``), due at one
instant: every job runs once for that fire time, none is recorded as missed because the
scheduler took a while to work through the burst, and the leader keeps its lease meanwhile."""

from __future__ import annotations

import time
from typing import cast

import redis

from tests.support.burst_jobs import EVERY_SECONDS
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.keys import Keys

JOBS = 8_500
IDS = [f"burst-{n:05d}" for n in range(JOBS)]


def entries_by_job(client: redis.Redis, keys: Keys) -> dict[str, list[RunRecord]]:
    pipe = client.pipeline(transaction=False)
    for job_id in IDS:
        pipe.xrange(keys.ledger(job_id))
    return {
        job_id: [RunRecord.from_fields(fields) for _, fields in entries]
        for job_id, entries in zip(IDS, pipe.execute(), strict=True)
    }


def test_a_burst_of_8500_jobs_due_at_one_instant_runs_every_job_once(
    redis_server: RedisServer, client: redis.Redis, processes: Processes, prefix: str
) -> None:
    keys = Keys(prefix)
    processes.scheduler(
        "scheduler",
        REDIS_URL=redis_server.url,
        JOBS_MODULES="tests.support.burst_jobs",
        BURST_JOBS=str(JOBS),
        LOG_LEVEL="WARNING",
    )
    wait_until(lambda: client.hlen(keys.jobs) == JOBS, 180, f"all {JOBS} jobs stored")
    stored_at = time.time()
    # A fire time every job shares (jobs stored before a boundary passed also fire then), and
    # one the leader, done starting, waits for: not taken in while it was still starting.
    top = cast(list[tuple[bytes, float]], client.zrevrange(keys.run_times, 0, 0, withscores=True))
    newest = top[0][1]
    while newest < stored_at + 5:
        newest += EVERY_SECONDS
    burst = int(newest * 1000)

    def ran() -> dict[str, list[RunRecord]]:
        found = entries_by_job(client, keys)
        at_burst = {
            job_id: [e for e in entries if fire_ms(e.scheduled_at) == burst]
            for job_id, entries in found.items()
        }
        return at_burst if all(at_burst.values()) else {}

    try:
        at_burst = wait_until(
            ran,
            EVERY_SECONDS + 120,
            f"an entry at the burst for each of the {JOBS} jobs",
            interval=1,  # reading 8,500 ledgers: not so often that it slows the burst down
        )
    finally:
        found = entries_by_job(client, keys)
        recorded = sum(any(fire_ms(e.scheduled_at) == burst for e in v) for v in found.values())
        print(f"{recorded} of {JOBS} jobs have an entry for the burst at {burst}")
    outcomes = {f"{e.status}:{e.reason}" for entries in at_burst.values() for e in entries}
    assert outcomes == {"succeeded:"}, f"burst outcomes: {outcomes}"
    twice = [job_id for job_id, entries in at_burst.items() if len(entries) > 1]
    assert not twice, f"{len(twice)} jobs have two entries for the burst, e.g. {twice[:3]}"
    assert "stopped firing jobs" not in processes.log("scheduler"), (
        "the leader lost its lease working through the burst"
    )
    assert int(client.get(keys.epoch) or 0) == 1, "leadership changed hands during the burst"
    assert processes.terminate("scheduler") == 0
