"""Starting a leader syncs jobs from code without resetting paused state or next run times."""

from __future__ import annotations

import asyncio

import pytest
import redis

from tests.support.leading import paused_leader
from tickonce._exceptions import NotLeaderError
from tickonce._firing.scheduler import LeaderScheduler
from tickonce._jobs.registry import Registry
from tickonce._jobs.sync import sync_registered_jobs
from tickonce._leadership.fencing import LeaderTerm
from tickonce._storage.keys import Keys


def work() -> None: ...


def leader(raw_client: redis.Redis, keys: Keys) -> LeaderScheduler:
    """A new leader's scheduler on the fenced store (started paused: nothing fires)."""
    epoch = int(raw_client.incr(keys.epoch))
    term = LeaderTerm(epoch, float("inf"), lambda: 0.0)
    return paused_leader(raw_client, keys, term, loop=asyncio.new_event_loop())


def registry(**intervals: int) -> Registry:
    jobs = Registry()
    for job_id, seconds in intervals.items():
        jobs.job("interval", id=job_id, seconds=seconds)(work)
    return jobs


def test_resync_keeps_state_and_applies_changed_definitions(
    raw_client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    first = leader(raw_client, keys)
    sync_registered_jobs(first, registry(a=5, b=7), raw_client, keys)
    first.pause_job("a")
    b_next = first.get_job("b").next_run_time
    first.shutdown(wait=False)

    same = leader(raw_client, keys)
    sync_registered_jobs(same, registry(a=5, b=7), raw_client, keys)
    assert same.get_job("a").next_run_time is None, "a paused job stays paused"
    assert same.get_job("b").next_run_time == b_next, "an unchanged job keeps its next run"
    same.shutdown(wait=False)

    changed = leader(raw_client, keys)
    sync_registered_jobs(changed, registry(a=9), raw_client, keys)
    job_a = changed.get_job("a")
    assert str(job_a.trigger) == "interval[0:00:09]", "a changed definition gets its trigger"
    assert job_a.next_run_time is None, "and stays paused"
    assert changed.get_job("b") is None, "a job removed from code leaves the schedule"
    assert raw_client.hkeys(keys.definitions) == [b"a"]
    changed.shutdown(wait=False)


def test_a_sync_after_leadership_ended_records_nothing(
    raw_client: redis.Redis, prefix: str
) -> None:
    """A leader fenced during its sync (a shard handed over, a lease lost) has a stopped
    scheduler, which queues an added job instead of storing it. The sync must not record the
    definition as synced (the next leader would never add the job) nor forget a job it could
    not remove."""
    keys = Keys(prefix)
    first = leader(raw_client, keys)
    sync_registered_jobs(first, registry(old=5), raw_client, keys)
    first.shutdown(wait=False)  # leadership ended; the sync thread goes on

    with pytest.raises(NotLeaderError):
        sync_registered_jobs(first, registry(new=5), raw_client, keys)
    assert raw_client.hkeys(keys.definitions) == [b"old"], "nothing recorded, nothing forgotten"

    successor = leader(raw_client, keys)
    sync_registered_jobs(successor, registry(new=5), raw_client, keys)
    assert successor.get_job("new") is not None, "the next leader adds the job"
    assert successor.get_job("old") is None, "and removes the one no code defines"
    successor.shutdown(wait=False)
