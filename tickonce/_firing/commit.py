"""Commit: a job's decided fire times and its new state, written in one atomic step.

No claim, no run. A wakeup *plans* per due job: claims for the fire times to run (each with
its ``skipped`` entry should ``max_instances`` runs be going on), ledger entries for the ones
that will not run, the job's new state and next run time. Plans are sent as one Lua call each,
pipelined, ``SEND_EVERY`` at a time and the last group with the read of the next run time. Per
job the call is atomic: its fire times are claimed exactly when its next run time moves past
them, so no crash in between can lose or repeat a fire time. A run-now is a plan of one run,
sent at once. The running slots that count ``max_instances`` across the cluster are taken here
too (run.py keeps them while bodies run).
"""

from __future__ import annotations

import enum
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from apscheduler.util import utc_timestamp_to_datetime
from redis.client import Pipeline

from tickonce._exceptions import NotLeaderError
from tickonce._firing.record import Claim, RunRecord, fire_ms
from tickonce._firing.tokens import token
from tickonce._leadership.fencing import LeaderTerm
from tickonce._storage.clients import evalsha, pipelined_scripts, text
from tickonce._storage.counters import counter_names, run_increments
from tickonce._storage.durability import NONE, Durability
from tickonce._storage.keys import Keys

logger = logging.getLogger(__name__)


class ClaimResult(enum.IntEnum):
    GRANTED = 1
    TAKEN = 0
    STALE_EPOCH = -1
    FULL = 2  # max_instances runs are going on across the cluster: recorded as skipped
    # Granted, but too few replicas acknowledged the claim (CLAIM_MIN_REPLICAS): not run,
    # recorded as failed (a failover could lose the claim, and the time be decided again).
    NOT_DURABLE = 3


# One job's fires and new state, atomically, if the caller's epoch is current.
#
# A fire time is decided once: each job keeps a high-water mark of the newest fire time decided
# (claimed to run, or recorded as not run), and a time at or before it is refused. The mark
# never expires, so no restart, job sync or clock skew can re-open an old fire time. The mark
# also names the last plan applied and its verdicts: the client re-sends a plan whose answer
# timed out, Redis may run both, and the second gets the first one's answer instead of finding
# its own fires taken. A run-now is claimed by its command id instead of its time.
#
# KEYS: epoch, jobs, run_times, inflight, counters, running, runs, decided[, run-now claim].
# ARGV: epoch, plan JSON (entries sorted by fire time), pickled job state.
# Returns {-1} for a stale epoch, else one verdict per entry, at the entry's ``pos``: for a run
# 1 granted, 0 already decided, 2 full (max_instances runs are going on: recorded as skipped);
# for an entry recorded as not run, 1 recorded, 0 already decided.
_FIRE = counter_names(
    """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[5], '{CLAIMS_REFUSED_STALE_EPOCH}', 1)
  return {-1}
end
local plan = cjson.decode(ARGV[2])
local mark = redis.call('HGET', KEYS[8], plan.job)
local hwm_text = '-1'
if mark then
  local last_plan, answer
  hwm_text, last_plan, answer = string.match(mark, '^(%S+) (%S+) (%S*)$')
  if last_plan == plan.id then
    local again = {}
    for verdict in string.gmatch(answer, '[^,]+') do
      table.insert(again, tonumber(verdict))
    end
    return again
  end
end
local hwm = tonumber(hwm_text)
local verdicts = {}
local now = nil
local holding = false

local function record(entry)
  for i = 1, #entry.metrics, 2 do
    redis.call('HINCRBYFLOAT', KEYS[5], entry.metrics[i], entry.metrics[i + 1])
  end
  redis.call('XADD', KEYS[7], 'MAXLEN', '=', plan.maxlen, '*', unpack(entry.fields))
end

local function run(entry)
  if not holding then
    if not now then
      local t = redis.call('TIME')
      now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', now)
    if redis.call('ZCARD', KEYS[6]) >= plan.limit then
      record(entry.skip)
      return 2
    end
    redis.call('ZADD', KEYS[6], now + plan.window, plan.slot)
    holding = true
  end
  redis.call('HSET', KEYS[4], entry.fire, entry.claim)
  return 1
end

for _, entry in ipairs(plan.entries) do
  local verdict = 0
  if entry.manual then
    if redis.call('SET', KEYS[9], entry.claim, 'NX', 'PX', plan.manual_ttl) then
      verdict = run(entry)
    end
  elseif tonumber(entry.ms) > hwm then
    hwm, hwm_text = tonumber(entry.ms), entry.ms
    if entry.skip then
      verdict = run(entry)
    else
      record(entry.record)
      verdict = 1
    end
  end
  if verdict == 0 then
    redis.call('HINCRBY', KEYS[5], '{CLAIMS_REFUSED_TAKEN}', 1)
  end
  verdicts[entry.pos] = verdict
end
local answer = table.concat(verdicts, ',')
redis.call('HSET', KEYS[8], plan.job, hwm_text .. ' ' .. plan.id .. ' ' .. answer)

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
)


def _entry(claim: Claim, record: RunRecord) -> dict[str, Any]:
    metrics = [part for pair in run_increments(record) for part in pair]
    return {"claim": claim.to_json(), "metrics": metrics, "fields": record.flat_fields()}


# How long a run-now's claim (by command id) is kept: longer than a command can be pending.
MANUAL_CLAIM_TTL_MS = 2 * 3600 * 1000


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
    on_done: Callable[[list[ClaimResult], float], None]  # verdicts, monotonic time sent
    op: str = "none"
    state: bytes = b""
    next_run: float | None = None
    unrun_logged: Callable[[RunRecord], None] = field(default=lambda record: None)
    id: str = field(default_factory=token)

    @property
    def fire_ids(self) -> set[str]:
        """The fires this plan claims to run."""
        return {claim.fire_id for claim, _ in self.runs}

    def document(self, max_entries: int) -> str:
        """The plan as the fire script reads it: entries in fire-time order."""
        entries: list[dict[str, Any]] = []
        for pos, (claim, skip) in enumerate(self.runs, start=1):
            entries.append(
                {
                    "pos": pos,
                    "ms": str(fire_ms(claim.scheduled_at)),
                    "manual": bool(claim.manual),
                    "claim": claim.to_json(),
                    "fire": claim.fire_id,
                    "skip": _entry(claim, skip),
                }
            )
        for pos, (claim, record) in enumerate(self.unrun, start=len(self.runs) + 1):
            ms = str(fire_ms(claim.scheduled_at))
            entries.append({"pos": pos, "ms": ms, "record": _entry(claim, record)})
        entries.sort(key=lambda entry: int(entry["ms"]))
        return json.dumps(
            {
                "id": self.id,
                "job": self.job_id,
                "op": self.op,
                "next": self.next_run,
                "limit": self.limit,
                "slot": self.slot,
                "window": self.slot_window_ms,
                "maxlen": max_entries,
                "manual_ttl": MANUAL_CLAIM_TTL_MS,
                "entries": entries,
            }
        )


def decided_until(client: redis.Redis, keys: Keys, job_id: str) -> int | None:
    """The newest fire time of ``job_id`` already decided (epoch ms), or None."""
    mark = client.hget(keys.decided, job_id)
    return int(text(mark).split(" ", 1)[0]) if mark else None


# Plans of one wakeup sent in groups of this many: the first bodies start after a few jobs are
# planned, not after all of them.
SEND_EVERY = 16


class FireCycle:
    """Plans of the current wakeup, sent together by ``flush``.

    Plans whose answer did not arrive (Redis stalled past the client's retry) are sent again,
    unchanged, before anything else: they may have been applied, and only their own answer
    tells which of their fires this process must run.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        term: LeaderTerm,
        max_entries: int,
        on_stale_epoch: Callable[[str], None],
        durability: Durability = NONE,
    ) -> None:
        self._client = client
        self._keys = keys
        self._term = term
        self._max_entries = max_entries
        self._on_stale_epoch = on_stale_epoch
        self._durability = durability
        self.shortfall = ""
        """Why the last group's granted claims were not durable ("" if they were)."""
        self._fire = client.register_script(_FIRE)
        self._plans: dict[str, FirePlan] = {}
        self._unanswered: list[FirePlan] = []
        self.after_send: Callable[[], None] = lambda: None
        """Called once a group of plans is answered (after each plan's ``on_done``)."""

    def end_wakeup(self) -> None:
        """A wakeup is over. Plans a failed one left unsent decided nothing: their jobs are
        still due and get planned again. (Kept, a job change made between wakeups would be
        taken for part of a plan and written only if that plan were ever sent.)"""
        self._plans = {}

    def plan(self, plan: FirePlan) -> None:
        self._plans[plan.job_id] = plan

    @property
    def unanswered_fires(self) -> set[str]:
        """Fires of plans sent without an answer yet: maybe claimed by this process."""
        return set().union(*(plan.fire_ids for plan in self._unanswered))

    def completed(self) -> None:
        """A job's plan is whole (its new state is in). Once ``SEND_EVERY`` plans are whole,
        send them, so that their bodies start while the wakeup plans the jobs after them."""
        if len(self._plans) >= SEND_EVERY:
            self._send(read_next=False)

    def flush(self) -> datetime | None:
        """Send every plan and read the next run time, in one round trip."""
        return self._send(read_next=True)

    def _send(self, *, read_next: bool) -> datetime | None:
        plans = [*self._unanswered, *self._plans.values()]
        self._plans, self._unanswered = {}, plans
        epoch = self._term.require()
        sent = time.monotonic()

        def queue(pipe: Pipeline) -> None:
            for plan in plans:
                keys = [
                    self._keys.epoch,
                    self._keys.jobs,
                    self._keys.run_times,
                    self._keys.inflight,
                    self._keys.counters,
                    self._keys.running(plan.job_id),
                    self._keys.ledger(plan.job_id),
                    self._keys.decided,
                    *(
                        self._keys.manual_claim(claim.job_id, claim.manual)
                        for claim, _ in plan.runs
                        if claim.manual
                    ),
                ]
                document = plan.document(self._max_entries)
                evalsha(pipe, self._fire, keys, [epoch, document, plan.state])
            if read_next:
                pipe.zrange(self._keys.run_times, 0, 0, withscores=True)
            self._durability.queue(pipe)  # on the same connection, after the claims

        answers = pipelined_scripts(self._client, queue, [self._fire])
        acknowledged = int(answers.pop()) if self._durability.wanted else 0
        durable = not self._durability.wanted or self._durability.held(acknowledged)
        self.shortfall = "" if durable else self._durability.shortfall(acknowledged)
        first = answers.pop() if read_next else None
        self._unanswered = []
        for plan, answer in zip(plans, answers, strict=True):
            verdicts = [int(value) for value in answer]
            if verdicts == [-1]:
                self._on_stale_epoch(f"epoch {plan.epoch} is no longer current")
                raise NotLeaderError(f"epoch {plan.epoch} is no longer current")
            runs = [ClaimResult(v) for v in verdicts[: len(plan.runs)]]
            if not durable:
                runs = [ClaimResult.NOT_DURABLE if v is ClaimResult.GRANTED else v for v in runs]
            for (_, record), verdict in zip(plan.unrun, verdicts[len(plan.runs) :], strict=True):
                if verdict == 1:
                    plan.unrun_logged(record)
            plan.on_done(runs, sent)
        self.after_send()
        return utc_timestamp_to_datetime(first[0][1]) if first else None

    def forget_unanswered(self) -> None:
        """The term is over: plans never answered are left to the lost-run sweep."""
        self._unanswered = []
