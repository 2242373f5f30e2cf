"""APScheduler's Redis job store, fenced by the leader's epoch: the storage adapter.

Adds, changes and removals (job sync, commands) are single fenced writes. The wakeup reads due
jobs in bounded batches here, and writes their new state itself, with their claims (commit.py):
no read method of this store writes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import redis
from apscheduler.job import Job
from apscheduler.jobstores.base import ConflictingIdError, JobLookupError
from apscheduler.jobstores.redis import RedisJobStore
from apscheduler.util import datetime_to_utc_timestamp

from tickonce._exceptions import NotLeaderError
from tickonce._jobs.tasks import dump_job, load_job
from tickonce._leadership.fencing import LeaderTerm
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

logger = logging.getLogger(__name__)

# A job store write lands only while the writer's epoch is the current one, so a deposed leader
# can never move a job's next run time. Retrying a write that landed gives the same answer (the
# client re-sends after a timeout and Redis may run both): an add finds its own state, a remove
# finds the job gone. A write made by a command marks it applied, in the same step.
# KEYS: epoch, jobs, run_times, the command's applied mark (only with a command).
# ARGV: epoch, op (add|update|remove), job id, pickled state, next run timestamp ('' = paused),
# the mark's ttl in seconds (with a command).
_FENCED_WRITE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local exists = redis.call('HEXISTS', KEYS[2], ARGV[3])
if ARGV[2] == 'add' and exists == 1 then
  if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[4] then return 1 end
  return -2
end
if ARGV[2] == 'remove' then
  if exists == 0 then return 1 end
  redis.call('HDEL', KEYS[2], ARGV[3])
  redis.call('ZREM', KEYS[3], ARGV[3])
else
  if exists == 0 and ARGV[2] ~= 'add' then return -3 end
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  if ARGV[5] == '' then
    redis.call('ZREM', KEYS[3], ARGV[3])
  else
    redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3])
  end
end
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[6]) end
return 1
"""


# Due jobs in one round trip, the longest due first, at most ARGV[2] of them (a burst of any
# size is taken in batches; Lua's unpack also fails beyond ~8,000 values).
# KEYS: run_times, jobs. ARGV: now (timestamp), batch size.
_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, ARGV[2])
if #ids == 0 then return {} end
return {ids, redis.call('HMGET', KEYS[2], unpack(ids))}
"""

# The command being applied in this thread (its id), if any: its job store writes mark it
# applied (Keys.command_applied), for as long as its outcome is kept.
APPLYING_COMMAND: ContextVar[str] = ContextVar("applying_command", default="")
APPLIED_MARK_SECONDS = 3600

# Due jobs taken in by one wakeup, at most: a wakeup stays short (the loop it runs on also
# renews the lease), and the next one follows at once while more are due.
DUE_BATCH = 100


class FencedRedisJobStore(RedisJobStore):  # type: ignore[misc]
    """RedisJobStore whose writes are checked against the leader term, locally and in Redis."""

    def __init__(self, client: redis.Redis, keys: Keys, term: LeaderTerm) -> None:
        super().__init__(jobs_key=keys.jobs, run_times_key=keys.run_times)
        self.redis = client
        self._keys = keys
        self._term = term
        self._write = client.register_script(_FENCED_WRITE)
        self._due = client.register_script(_DUE)

    def due_batch(self, now: datetime) -> tuple[list[Job], bool]:
        """Up to ``DUE_BATCH`` jobs due at ``now``, the longest due first, and whether the
        batch is full (more may be due behind it)."""
        found = self._due(
            keys=[self.run_times_key, self.jobs_key],
            args=[repr(datetime_to_utc_timestamp(now)), DUE_BATCH],
        )
        ids, states = found or ([], [])
        jobs: list[Job] = self._reconstitute_jobs(zip(ids, states, strict=True))
        return jobs, len(ids) == DUE_BATCH

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self.due_batch(now)[0]

    def state_of(self, job: Job) -> tuple[bytes, float | None]:
        """A job's stored form: its pickled state and next run timestamp (None: paused)."""
        state = dump_job(job, self.pickle_protocol)
        next_run = job.next_run_time
        return state, datetime_to_utc_timestamp(next_run) if next_run else None

    def _fenced(self, op: str, job_id: str, job: Job | None = None) -> None:
        epoch = self._term.require()
        state, next_run = self.state_of(job) if job is not None else (b"", None)
        keys = [self._keys.epoch, self._keys.jobs, self._keys.run_times]
        args: list[Any] = [epoch, op, job_id, state, "" if next_run is None else repr(next_run)]
        command = APPLYING_COMMAND.get()
        if command:
            keys.append(self._keys.command_applied(command))
            args.append(APPLIED_MARK_SECONDS)
        result = int(self._write(keys=keys, args=args))
        if result == -1:
            self._term.end()
            raise NotLeaderError(f"epoch {epoch} is no longer current; job store write refused")
        if result == -2:
            raise ConflictingIdError(job_id)
        if result == -3:
            raise JobLookupError(job_id)

    def add_job(self, job: Job) -> None:
        self._fenced("add", job.id, job)

    def update_job(self, job: Job) -> None:
        self._fenced("update", job.id, job)

    def remove_job(self, job_id: str) -> None:
        self._fenced("remove", job_id)

    def remove_all_jobs(self) -> None:
        for job_id in self.redis.hkeys(self.jobs_key):
            self._fenced("remove", text(job_id))

    def _reconstitute_job(self, job_state: bytes) -> Job:
        job = load_job(job_state)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _reconstitute_jobs(self, job_states: Iterable[tuple[Any, bytes]]) -> list[Job]:
        # APScheduler deletes jobs it cannot unpickle; keep them (no data is lost) and say so.
        jobs = []
        for job_id, job_state in job_states:
            try:
                jobs.append(self._reconstitute_job(job_state))
            except Exception:
                logger.exception("cannot load stored job %r; leaving it in the store", job_id)
        return jobs
