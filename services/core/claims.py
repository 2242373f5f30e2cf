"""Claim per fire: no claim, no run. One wakeup's claims go to Redis in one round trip.

APScheduler's loop, per due job: the executor's ``submit_job``, then the store's
``update_job`` (or ``remove_job``); at the end of the wakeup ``get_next_run_time``. Here the
first two only *plan*: claims for the runs, ledger entries for the fire times that will not
run, the job's new state. ``get_next_run_time`` then sends every job's plan as one Lua call
each, all pipelined with the read of the next run time. Per job the call is atomic: its fire
times are claimed exactly when its next run time moves past them, so no crash in between can
lose or repeat a fire time. A run-now is a plan of one run, sent at once.
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from apscheduler.util import utc_timestamp_to_datetime

from services.core.connection import text
from services.core.fencing import LeaderTerm, NotLeaderError
from services.core.keys import Keys
from services.core.ledger import Claim, RunRecord, fire_ms
from services.core.metrics import run_increments

logger = logging.getLogger(__name__)


class ClaimResult(enum.IntEnum):
    GRANTED = 1
    TAKEN = 0
    STALE_EPOCH = -1
    FULL = 2  # max_instances runs are going on across the cluster: recorded as skipped


# One job's fires and new state, atomically, if the caller's epoch is current.
# KEYS: epoch, jobs, run_times, inflight, counters, running, runs, then one claim key per run
# and per unrun entry, in plan order. ARGV: epoch, plan JSON, pickled job state.
# Returns {-1} for a stale epoch, else one verdict per run (1 granted, 0 taken, 2 full: the
# fire was recorded as skipped) and per unrun entry (1 recorded, 0 taken).
_FIRE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[5], 'claims_refused_stale_epoch', 1)
  return {-1}
end
local plan = cjson.decode(ARGV[2])
local verdicts = {}
local key = 8
local now = nil
local holding = false

local function record(entry)
  for i = 1, #entry.metrics, 2 do
    redis.call('HINCRBYFLOAT', KEYS[5], entry.metrics[i], entry.metrics[i + 1])
  end
  redis.call('XADD', KEYS[7], 'MAXLEN', '=', plan.maxlen, '*', unpack(entry.fields))
end

for _, run in ipairs(plan.runs) do
  local claim_key = KEYS[key]
  key = key + 1
  local verdict = 1
  if not holding then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
    if redis.call('ZCARD', KEYS[6]) >= plan.limit then
      verdict = 2
    end
  end
  if not redis.call('SET', claim_key, run.claim, 'NX', 'PX', plan.ttl) then
    redis.call('HINCRBY', KEYS[5], 'claims_refused_taken', 1)
    verdict = 0
  elseif verdict == 2 then
    record(run.skip)
  else
    if not holding then
      redis.call('ZADD', KEYS[6], now + plan.window, plan.slot)
      holding = true
    end
    redis.call('HSET', KEYS[4], run.fire, run.claim)
  end
  table.insert(verdicts, verdict)
end

for _, entry in ipairs(plan.unrun) do
  local claim_key = KEYS[key]
  key = key + 1
  if redis.call('SET', claim_key, entry.claim, 'NX', 'PX', plan.ttl) then
    record(entry)
    table.insert(verdicts, 1)
  else
    redis.call('HINCRBY', KEYS[5], 'claims_refused_taken', 1)
    table.insert(verdicts, 0)
  end
end

if plan.op ~= 'none' and redis.call('HEXISTS', KEYS[2], plan.job) == 1 then
  if plan.op == 'remove' then
    redis.call('HDEL', KEYS[2], plan.job)
    redis.call('ZREM', KEYS[3], plan.job)
  else
    redis.call('HSET', KEYS[2], plan.job, ARGV[3])
    if plan.next == cjson.null then
      redis.call('ZREM', KEYS[3], plan.job)
    else
      redis.call('ZADD', KEYS[3], plan.next, plan.job)
    end
  end
end
return verdicts
"""


# Keep running slots alive; report the ones that are gone (expired while Redis was out of
# reach), whose bodies must stop. KEYS: running sets. ARGV: window ms, then one member per key.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('ZSCORE', key, ARGV[i + 1]) then
    redis.call('ZADD', key, now + tonumber(ARGV[1]), ARGV[i + 1])
  else
    table.insert(lost, ARGV[i + 1])
  end
end
return lost
"""


def _entry(claim: Claim, record: RunRecord) -> dict[str, Any]:
    metrics = [part for pair in run_increments(record) for part in pair]
    return {"claim": claim.to_json(), "metrics": metrics, "fields": record.flat_fields()}


@dataclass
class FirePlan:
    """What one wakeup does for one job; ``on_done`` gets the verdicts of its runs."""

    job_id: str
    epoch: int
    runs: list[tuple[Claim, RunRecord]]  # a claim, and its record if refused for overlap
    unrun: list[tuple[Claim, RunRecord]]
    limit: int
    slot: str
    slot_window_ms: int
    claim_ttl_ms: int
    on_done: Callable[[list[ClaimResult], float], None]  # verdicts, monotonic time sent
    op: str = "none"
    state: bytes = b""
    next_run: float | None = None
    unrun_logged: Callable[[RunRecord], None] = field(default=lambda record: None)


class FireCycle:
    """Plans of the current wakeup, sent together by ``flush``."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        term: LeaderTerm,
        max_entries: int,
        on_stale_epoch: Callable[[str], None],
    ) -> None:
        self._client = client
        self._keys = keys
        self._term = term
        self._max_entries = max_entries
        self._on_stale_epoch = on_stale_epoch
        self._fire = client.register_script(_FIRE)
        self._refresh = client.register_script(_REFRESH)
        self._plans: dict[str, FirePlan] = {}

    def plan(self, plan: FirePlan) -> None:
        self._plans[plan.job_id] = plan

    def planned(self, job_id: str) -> FirePlan | None:
        return self._plans.get(job_id)

    @property
    def pending(self) -> bool:
        return bool(self._plans)

    def flush(self) -> datetime | None:
        """Send every plan and read the next run time, in one round trip."""
        plans, self._plans = list(self._plans.values()), {}
        epoch = self._term.require()
        sent = time.monotonic()
        pipe = self._client.pipeline(transaction=False)
        for plan in plans:
            document = {
                "job": plan.job_id,
                "op": plan.op,
                "next": plan.next_run,
                "ttl": plan.claim_ttl_ms,
                "limit": plan.limit,
                "slot": plan.slot,
                "window": plan.slot_window_ms,
                "maxlen": self._max_entries,
                "runs": [
                    {"claim": claim.to_json(), "fire": claim.fire_id, "skip": _entry(claim, skip)}
                    for claim, skip in plan.runs
                ],
                "unrun": [_entry(claim, record) for claim, record in plan.unrun],
            }
            claim_keys = [self._claim_key(claim) for claim, _ in [*plan.runs, *plan.unrun]]
            self._fire(
                keys=[
                    self._keys.epoch,
                    self._keys.jobs,
                    self._keys.run_times,
                    self._keys.inflight,
                    self._keys.counters,
                    self._keys.running(plan.job_id),
                    self._keys.runs(plan.job_id),
                    *claim_keys,
                ],
                args=[epoch, json.dumps(document), plan.state],
                client=pipe,
            )
        pipe.zrange(self._keys.run_times, 0, 0, withscores=True)
        *answers, first = pipe.execute()
        for plan, answer in zip(plans, answers, strict=True):
            verdicts = [int(value) for value in answer]
            if verdicts == [-1]:
                self._on_stale_epoch(f"epoch {plan.epoch} is no longer current")
                raise NotLeaderError(f"epoch {plan.epoch} is no longer current")
            runs = [ClaimResult(v) for v in verdicts[: len(plan.runs)]]
            for (_, record), verdict in zip(plan.unrun, verdicts[len(plan.runs) :], strict=True):
                if verdict == 1:
                    plan.unrun_logged(record)
            plan.on_done(runs, sent)
        return utc_timestamp_to_datetime(first[0][1]) if first else None

    def _claim_key(self, claim: Claim) -> str:
        if claim.manual:
            return self._keys.manual_claim(claim.job_id, claim.manual)
        return self._keys.claim(claim.job_id, fire_ms(claim.scheduled_at))

    def refresh_slots(self, slots: Sequence[tuple[str, str]], window_ms: int) -> set[str]:
        """Extend running slots (job id, member); the members that are gone."""
        if not slots:
            return set()
        lost = self._refresh(
            keys=[self._keys.running(job_id) for job_id, _ in slots],
            args=[window_ms, *(member for _, member in slots)],
        )
        return {text(member) for member in lost}
