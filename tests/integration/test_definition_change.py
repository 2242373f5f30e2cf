"""A job whose definition changed while no scheduler ran: the fire times it missed under the
old definition are decided (run, or recorded) first, then the new definition applies."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.support.leading import lead_for
from tests.support.ledger_checks import duplicates, fire_times, read_evidence
from tests.support.redis_server import RedisServer
from tests.support.timeline_jobs import beat
from tickonce._config.settings import Settings
from tickonce._jobs.registry import Registry
from tickonce._storage.keys import Keys


def version(seconds: int) -> Registry:
    jobs = Registry()
    jobs.job("interval", id="report", seconds=seconds, catch_up="all", misfire_grace_time=60)(beat)
    return jobs


async def test_missed_fire_times_of_the_old_definition_are_decided_before_the_new_one(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BODY_LOG", str(tmp_path / "bodies.jsonl"))
    settings = make_settings(redis_server, jobs_modules=[], lease_ttl_seconds=1.0)
    await lead_for(settings, version(1), 2.5)
    stopped = max(fire_times(e) for e in read_evidence(client, prefix, "report").ledger)[-1]
    await asyncio.sleep(3)  # downtime: three fire times of the old definition pass
    await lead_for(settings, version(2), 6)  # the new code: every 2 s

    ledger = read_evidence(client, prefix, "report").ledger
    times = sorted(t for entry in ledger for t in fire_times(entry))
    assert not duplicates(times)
    downtime = [t for t in times if stopped < t <= stopped + 3500]
    assert downtime == [stopped + 1000, stopped + 2000, stopped + 3000], (
        f"fire times of the downtime without a ledger entry: {downtime}"
    )
    job = client.hget(Keys(prefix).definitions, "report")
    assert job == version(2).get("report").fingerprint, "the new definition never applied"  # type: ignore[union-attr]
