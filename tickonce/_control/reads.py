"""What the API reads: stored jobs a page at a time, and a job's ledger a page at a time.

Both stay light whatever the number of jobs: a page of jobs unpickles at most a bounded
number of them (a filter that skips many returns a shorter page and a cursor to go on from),
and a ledger page is one bounded range read of the job's stream.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import redis.asyncio as aioredis
from apscheduler.job import Job
from pydantic import BaseModel, Field

from tickonce._exceptions import UnreadableJobError
from tickonce._firing.record import RunRecord as RunRecord  # a ledger entry, as read
from tickonce._jobs.policy import RunPolicy
from tickonce._jobs.tasks import load_job, task_of
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

logger = logging.getLogger(__name__)

JOBS_PAGE_DEFAULT = 100
JOBS_PAGE_MAX = 1000
# Jobs a page looks at, at most, per job it may return: with a filter that few jobs match, a
# page ends early (with a cursor) instead of unpickling every stored job.
_EXAMINED_PER_JOB = 10
_CHUNK = 200

_ENTRY_ID = re.compile(r"^\d+-\d+$")


@dataclass
class JobPage:
    jobs: list[Job]
    next_after: str | None  # the cursor for the next page; None: nothing after this page


async def job_page(
    client: aioredis.Redis,
    keys: Keys,
    *,
    limit: int = JOBS_PAGE_DEFAULT,
    after: str = "",
    paused: bool | None = None,
    task: str | None = None,
    search: str = "",
) -> JobPage:
    """Up to ``limit`` jobs with ids after ``after``, in id order, optionally only the paused
    (or only the scheduled) ones, those running ``task``, or those whose id contains
    ``search`` (any case) (client with ``decode=False``)."""
    shards = keys.every_shard()
    async with client.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.hkeys(shard.jobs)
            if paused is not None:
                pipe.zrange(shard.run_times, 0, -1)
        answers = await pipe.execute()
    step = 1 if paused is None else 2
    ids = sorted(text(job_id) for found_ids in answers[::step] for job_id in found_ids)
    ids = ids[bisect.bisect_right(ids, after) if after else 0 :]
    if search:
        needle = search.lower()
        ids = [job_id for job_id in ids if needle in job_id.lower()]
    if paused is not None:
        scheduled = {text(job_id) for members in answers[1::2] for job_id in members}
        ids = [job_id for job_id in ids if (job_id not in scheduled) == paused]
    budget = max(limit * _EXAMINED_PER_JOB, _CHUNK)
    found: list[Job] = []
    examined = 0
    last = ""
    while examined < len(ids) and len(found) < limit and examined < budget:
        chunk = ids[examined : examined + _CHUNK]
        states = await _job_states(client, keys, chunk)
        for job_id, state in zip(chunk, states, strict=True):
            examined += 1
            last = job_id
            if not state:
                continue  # deleted meanwhile
            try:
                job = job_from_state(state)
            except Exception:
                logger.exception("cannot load stored job %r", job_id)
                continue
            if task is None or task_of(job) == task:
                found.append(job)
                if len(found) == limit:
                    break
    return JobPage(found, last if examined < len(ids) else None)


async def _job_states(client: aioredis.Redis, keys: Keys, job_ids: list[str]) -> list[Any]:
    """The stored states of ``job_ids`` (None where there is none), each from its shard."""
    by_shard: dict[int, list[str]] = {}
    for job_id in job_ids:
        by_shard.setdefault(keys.of_job(job_id).shard, []).append(job_id)
    states: dict[str, Any] = {}
    for shard, ids in by_shard.items():
        found = await client.hmget(keys.in_shard(shard).jobs, ids)
        states.update(zip(ids, found, strict=True))
    return [states[job_id] for job_id in job_ids]


def check_entry_id(entry: str) -> None:
    """A ledger entry id as the API returns it (``<ms>-<n>``); ValueError otherwise."""
    if not _ENTRY_ID.match(entry):
        raise ValueError(f"{entry!r} is not a ledger entry id (like 1795332940000-0)")


async def run_page(
    client: aioredis.Redis, keys: Keys, job_id: str, *, limit: int, before: str = ""
) -> list[tuple[str, RunRecord]]:
    """Up to ``limit`` ledger entries of ``job_id`` older than entry ``before`` (all if
    empty), newest first, each with its entry id (client with ``decode=True``)."""
    if before:
        check_entry_id(before)
    entries = await client.xrevrange(
        keys.ledger(job_id), max=f"({before}" if before else "+", min="-", count=limit
    )
    return [(str(entry), RunRecord.from_fields(fields)) for entry, fields in entries or []]


# A field named kwargs clashes with __init__(**kwargs) for the pydantic mypy plugin; the name is
# APScheduler's, so it stays.
class JobView(BaseModel):  # type: ignore[no-redef]
    """A job as the API shows it."""

    id: str
    name: str
    task: str = Field(description="The registered job function this schedule runs.")
    trigger: str = Field(description="APScheduler's description, e.g. interval[0:00:01].")
    next_run_time: datetime | None = Field(description="None while paused.")
    paused: bool
    max_instances: int
    misfire_grace_time: int | None = Field(description="Seconds; None means no limit.")
    catch_up: Literal["coalesce", "all", "skip"] = Field(
        description="Missed fire times: coalesce into one run, run all, or skip all."
    )
    timeout: float | None = Field(description="Seconds a run may take; None means no limit.")
    kwargs: dict[str, Any]

    @classmethod
    def of(cls, job: Job) -> JobView:
        policy = RunPolicy.of(job)
        return cls(
            id=job.id,
            name=job.name,
            task=task_of(job),
            trigger=str(job.trigger),
            next_run_time=job.next_run_time,
            paused=job.next_run_time is None,
            max_instances=job.max_instances,
            misfire_grace_time=job.misfire_grace_time,
            catch_up=policy.catch_up,
            timeout=policy.timeout,
            kwargs=dict(job.kwargs),
        )


def job_from_state(state: bytes | str) -> Job:
    """A stored job, read-only (not bound to a scheduler)."""
    assert isinstance(state, bytes), "read jobs with a client made with decode=False"
    return load_job(state)


async def read_job(client: aioredis.Redis, keys: Keys, job_id: str) -> Job | None:
    """One stored job, None if there is none; UnreadableJobError if it cannot be loaded."""
    state = await client.hget(keys.of_job(job_id).jobs, job_id)
    if not state:
        return None
    try:
        return job_from_state(state)
    except Exception as exc:
        raise UnreadableJobError(
            f"stored job {job_id!r} cannot be loaded by this version: {type(exc).__name__}: {exc}"
        ) from None
