"""After a long downtime a new leader brings every job up to date in short steps: it keeps
its lease, the jobs advance, and the ledger accounts for every missed fire time, in counted
ranges rather than one entry per time."""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.leading import lead_for, lead_until
from tests.support.redis_server import RedisServer
from tests.support.timeline_jobs import beat
from tickonce._config.settings import Settings
from tickonce._firing.commit import decided_until
from tickonce._firing.record import RunRecord
from tickonce._jobs.registry import Registry
from tickonce._storage.keys import Keys

JOBS = [f"minutely-{n:02d}" for n in range(12)]
DOWNTIME = timedelta(days=14)


def back_date(raw: redis.Redis, keys: Keys, job_id: str, to: datetime) -> None:
    """The job's next run time as if no scheduler had run since ``to``."""
    state = pickle.loads(raw.hget(keys.jobs, job_id))  # type: ignore[arg-type]
    state["next_run_time"] = to
    raw.hset(keys.jobs, job_id, pickle.dumps(state))
    raw.zadd(keys.run_times, {job_id: to.timestamp()})


async def test_fourteen_days_down_then_every_job_advances_at_once(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("BODY_LOG", str(tmp_path / "bodies.jsonl"))
    keys = Keys(prefix)
    raw = redis.Redis.from_url(redis_server.url)
    jobs = Registry()
    for job_id in JOBS:
        jobs.job("cron", minute="*", id=job_id)(beat)
    settings = make_settings(redis_server, jobs_modules=[])
    await lead_for(settings, jobs, 1.0)

    down_since = (datetime.now(UTC) - DOWNTIME).replace(second=0, microsecond=0)
    # Fire times the first leader decided (if a minute began while it led) stay decided: the
    # downtime's fire times to account for are those after them.
    unaccounted_from = {}
    for job_id in JOBS:
        back_date(raw, keys, job_id, down_since)
        mark = decided_until(raw, keys, job_id)
        after_mark = (
            datetime.fromtimestamp(mark / 1000, UTC) + timedelta(minutes=1) if mark else None
        )
        unaccounted_from[job_id] = max(down_since, after_mark) if after_mark else down_since
    epoch = int(raw.get(keys.epoch) or 0)

    def all_advanced() -> bool:
        """Every job's next run time is current: the whole downtime is decided."""
        cutoff = datetime.now(UTC) - timedelta(minutes=1)
        return all(
            pickle.loads(raw.hget(keys.jobs, job_id))["next_run_time"] > cutoff  # type: ignore[arg-type]
            for job_id in JOBS
        )

    # One term catches up on it all (bounded in time; how long it takes is the benchmark's).
    await lead_until(settings, jobs, all_advanced, 60.0)

    assert int(raw.get(keys.epoch) or 0) == epoch + 1, "leadership cycled while catching up"
    now = datetime.now(UTC)
    for job_id in JOBS:
        state = pickle.loads(raw.hget(keys.jobs, job_id))  # type: ignore[arg-type]
        assert state["next_run_time"] > now - timedelta(minutes=1), f"{job_id} did not advance"
        entries = [
            RunRecord.from_fields(fields) for _, fields in client.xrange(keys.ledger(job_id)) or []
        ]
        since = unaccounted_from[job_id]
        entries = sorted(
            (e for e in entries if e.scheduled_at >= since), key=lambda e: e.scheduled_at
        )
        minutes = int((state["next_run_time"] - since) / timedelta(minutes=1))
        assert sum(e.count for e in entries) == minutes, f"{job_id}: fire times unaccounted for"
        for earlier, later in itertools.pairwise(entries):
            assert later.scheduled_at - earlier.last_scheduled_at == timedelta(minutes=1), (
                f"{job_id}: a gap or an overlap between {earlier} and {later}"
            )
        assert len(entries) <= 30, f"{job_id}: {len(entries)} entries for one downtime"
    raw.close()
