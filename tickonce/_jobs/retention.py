"""Forgetting a job that is gone, so Redis does not grow with every job ever scheduled, and
keeping aside a job no live code defines until then.

A job defined in code that no live contender's code defines any more is *retired*: its stored
state moves aside (``Keys.retired``) and it stops firing, while its decided mark, counters and
ledger stay. Code that defines it again within ``DELETED_JOB_HISTORY_SECONDS`` gets it back as
it was (paused or not, its run-time changes if its definition is the same); a one-off job that
fired never runs again. After that time it is forgotten like a deleted job.

A job leaves state in Redis as it runs: its counts in the ``counters`` hash, its decided mark,
claims of runs in ``inflight``, running slots and its run ledger. When the job is deleted (or
job sync removes it) ``forget_job`` deletes all of it in one atomic step, except:

- the ledger, which is kept ``DELETED_JOB_HISTORY_SECONDS`` (an expiry), then goes;
- the claim of a run still going: its run gets its ledger entry when it ends (or when its
  runner is found lost), which deletes the claim;
- the running slot of a body still going: deleting it would have the body stopped as if its
  slot were lost; the body gives it back when it ends and the key goes with its last slot;
- run-now claims (``claim:{job}:manual:{command}``), which expire by themselves (2 h).

A run that was still going counts itself when it ends, after its job was forgotten; so do runs
recorded as lost later. The leader's periodic ``JobRetention.sweep`` forgets such jobs again,
and anything left by jobs that went before this existed.

Nothing is forgotten for a job that is in the job store or defined in code (the check is part
of the atomic step): a job created again under the same id is a new job and is never touched.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.commands.core import Script

from tickonce._storage.clients import text
from tickonce._storage.counters import RUNS, SEP
from tickonce._storage.keys import Keys

logger = logging.getLogger("tickonce.retention")

# Jobs forgotten per call: each call scans the counters hash once, and stays short.
BATCH = 100

# Forget jobs that are gone. Per job, unless it is in the job store or defined in code:
# - its fields in the counters hash: every field whose second SEP-separated part is the job id
#   (runs|<job>|<status>, lateness|<job>|<bucket>, lateness_sum|<job>, duration|..., as
#   _storage/counters.py names them), found by one HSCAN over the hash for all jobs;
# - its decided mark (a job created again under its id is a new job and starts clean);
# - its claims in inflight whose run is already in its ledger (same scheduled time, or same
#   run-now command); a claim of a run still going stays until that run is recorded;
# - its running slots that have expired; live ones belong to bodies still going;
# - its ledger: kept for the history time (an expiry, never lengthened), or deleted at once (0).
# KEYS: jobs, definitions, counters, decided, inflight, then running and runs of each job.
# ARGV: history ms (0 = delete the ledger now), MATCH pattern for the counters, job ids.
# Returns per job {forgotten (0: the job exists, nothing done), counter fields deleted,
# decided mark deleted, claims deleted, claims kept, slots kept, ledger ms left (-2: none)}.
_FORGET = """
local history = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local gone = {}
for i = 3, #ARGV do
  local job = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], job) == 0 and redis.call('HEXISTS', KEYS[2], job) == 0 then
    gone[job] = {}
  end
end

local function hscan(key, pattern, each)
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', key, cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = page[1]
    for i = 1, #page[2], 2 do each(page[2][i], page[2][i + 1]) end
  until cursor == '0'
end

local function hdel(key, names)
  for i = 1, #names, 500 do
    redis.call('HDEL', key, unpack(names, i, math.min(i + 499, #names)))
  end
end

-- Counters: one scan for every job (HSCAN may repeat a field: each is taken once).
local counted, seen = {}, {}
hscan(KEYS[3], ARGV[2], function(name)
  local first = string.find(name, '|', 1, true)
  if first and not seen[name] then
    local second = string.find(name, '|', first + 1, true)
    local job = string.sub(name, first + 1, (second or 0) - 1)
    if gone[job] then
      seen[name] = true
      table.insert(counted, name)
      gone[job].counters = (gone[job].counters or 0) + 1
    end
  end
end)
hdel(KEYS[3], counted)

local results = {}
for i = 3, #ARGV do
  local job = ARGV[i]
  local running, runs = KEYS[4 + 2 * (i - 2)], KEYS[5 + 2 * (i - 2)]
  local state = gone[job]
  if not state then
    table.insert(results, {0, 0, 0, 0, 0, 0, 0})
  else
    local decided = redis.call('HDEL', KEYS[4], job)

    -- Claims of the job (fields "<job>@..."): dropped only if their run is in the ledger.
    local claims = {}
    local escaped = string.gsub(job, '[%*%?%[%]\\\\]', '\\\\%0')
    hscan(KEYS[5], escaped .. '@*', function(fire, claim) claims[fire] = claim end)
    local dropped, kept = {}, 0
    if next(claims) then
      local recorded = {}
      for _, entry in ipairs(redis.call('XRANGE', runs, '-', '+')) do
        local fields = {}
        for f = 1, #entry[2], 2 do fields[entry[2][f]] = entry[2][f + 1] end
        if fields.manual and fields.manual ~= '' then
          recorded['manual:' .. fields.manual] = true
        elseif fields.scheduled_at then
          recorded['at:' .. fields.scheduled_at] = true
        end
      end
      for fire, claim in pairs(claims) do
        local ok, data = pcall(cjson.decode, claim)
        local id = nil
        if ok and type(data) == 'table' then
          if type(data.manual) == 'string' and data.manual ~= '' then
            id = 'manual:' .. data.manual
          elseif type(data.scheduled_at) == 'string' then
            id = 'at:' .. data.scheduled_at
          end
        end
        if id and recorded[id] then
          table.insert(dropped, fire)
        else
          kept = kept + 1
        end
      end
      hdel(KEYS[5], dropped)
    end

    redis.call('ZREMRANGEBYSCORE', running, '-inf', now)
    local slots = redis.call('ZCARD', running)

    if history == 0 then
      redis.call('DEL', runs)
    else
      local left = redis.call('PTTL', runs)
      if left == -1 or left > history then
        redis.call('PEXPIRE', runs, history)
      end
    end
    local left = redis.call('PTTL', runs)
    table.insert(results, {1, state.counters or 0, decided, #dropped, kept, slots, left})
  end
end
return results
"""

_SCRIPTS: weakref.WeakKeyDictionary[redis.Redis, Script] = weakref.WeakKeyDictionary()


def _forget_script(client: redis.Redis) -> Script:
    """``_FORGET``, registered once per client."""
    script = _SCRIPTS.get(client)
    if script is None:
        script = _SCRIPTS[client] = client.register_script(_FORGET)
    return script


@dataclass(frozen=True)
class Forgotten:
    """What forgetting one job deleted and what it left to go by itself."""

    job_id: str
    counters: int  # counter fields deleted
    decided: bool  # its decided mark deleted
    claims_dropped: int  # inflight claims whose run was already in the ledger
    claims_kept: int  # inflight claims of runs still going: recorded when they end
    slots_kept: int  # running slots of bodies still going: given back when they end
    history_ms: int  # the ledger's time left (-2: no ledger)


def forget_jobs(
    client: redis.Redis, keys: Keys, job_ids: Sequence[str], history_seconds: float
) -> list[Forgotten]:
    """Forget each job of ``job_ids`` that is neither in the job store nor defined in code, in
    one atomic step (see ``_FORGET``); returns what was done for those, in order."""
    if not job_ids:
        return []
    history_ms = 0 if history_seconds <= 0 else max(1, round(history_seconds * 1000))
    # One job: only fields naming it are matched; several: every per-job field is looked at.
    pattern = f"*{SEP}{_glob(job_ids[0])}*" if len(job_ids) == 1 else f"*{SEP}*"
    per_job = [key for job_id in job_ids for key in (keys.running(job_id), keys.ledger(job_id))]
    replies: list[list[Any]] = _forget_script(client)(
        keys=[keys.jobs, keys.definitions, keys.counters, keys.decided, keys.inflight, *per_job],
        args=[history_ms, pattern, *job_ids],
    )
    return [
        Forgotten(job_id, counters, bool(decided), dropped, kept, slots, left)
        for job_id, (done, counters, decided, dropped, kept, slots, left) in zip(
            job_ids, ([int(value) for value in reply] for reply in replies), strict=True
        )
        if done
    ]


def forget_job(
    client: redis.Redis, keys: Keys, job_id: str, history_seconds: float
) -> Forgotten | None:
    """Forget ``job_id``, which was just deleted: its counters, decided mark, running slots and
    recorded claims go now, its ledger after ``history_seconds`` (0: now). None if the job is
    in the job store or defined in code: then nothing is touched. Call it after the job left
    the job store and, for a job removed from code, after its definition was deleted."""
    forgotten = forget_jobs(client, keys, [job_id], history_seconds)
    return forgotten[0] if forgotten else None


def keep_history(client: redis.Redis, keys: Keys, job_id: str) -> None:
    """A job scheduled under the id of one that was deleted keeps its ledger for good again
    (removes the expiry ``forget_job`` set). Call it when a job is added."""
    client.persist(keys.ledger(job_id))


@dataclass(frozen=True)
class Retired:
    """A job kept aside since ``since_ms`` (local clock), as it was stored (None: it had left
    the schedule, a one-off job that fired), with the fingerprint of its last definition."""

    job_id: str
    since_ms: int
    fingerprint: str
    state: bytes | None


def retire_job(
    client: redis.Redis, keys: Keys, job_id: str, fingerprint: str, state: bytes | None
) -> None:
    """Keep ``job_id`` aside (see the module's docstring); call it before removing it from
    the job store, so that it is never in neither."""
    entry = {
        "since": int(time.time() * 1000),
        "fingerprint": fingerprint,
        "state": None if state is None else base64.b64encode(state).decode(),
    }
    client.hset(keys.retired, job_id, json.dumps(entry))


def retired_job(client: redis.Redis, keys: Keys, job_id: str) -> Retired | None:
    """The job kept aside under ``job_id``, None if there is none."""
    found = client.hget(keys.retired, job_id)
    return None if found is None else _retired(job_id, found)


def unretire_job(client: redis.Redis, keys: Keys, job_id: str) -> None:
    """Drop what was kept aside of ``job_id`` (it is back in the schedule, or forgotten)."""
    client.hdel(keys.retired, job_id)


def _retired(job_id: str, found: bytes | str) -> Retired:
    entry = json.loads(found)
    state = entry.get("state")
    return Retired(
        job_id,
        int(entry["since"]),
        str(entry.get("fingerprint", "")),
        None if state is None else base64.b64decode(state),
    )


@dataclass(frozen=True)
class JobRetention:
    """Forgetting jobs for the leader: at deletion, and by a periodic sweep."""

    client: redis.Redis
    keys: Keys
    history_seconds: float

    def forget(self, job_id: str) -> Forgotten | None:
        return forget_job(self.client, self.keys, job_id, self.history_seconds)

    def sweep(self) -> list[Forgotten]:
        """Forget every job that is gone yet has counts or a decided mark: runs that were still
        going when their job was forgotten (or were recorded as lost later) counted themselves
        afterwards; jobs that went before forgetting existed; one-off jobs that fired and left
        the schedule (unless still defined in code); retired jobs once their time is up. Run
        it every few tens of seconds."""
        present = {text(job_id) for job_id in self.client.hkeys(self.keys.jobs)}
        present.update(text(job_id) for job_id in self.client.hkeys(self.keys.definitions))
        present.update(self._kept_aside(present))
        named: set[str] = set()
        # Every job with counters has a runs counter (a recorded run counts itself there
        # first), so matching those alone finds them all, at a fraction of the fields.
        runs = f"{RUNS}{SEP}*"
        for name, _ in self.client.hscan_iter(self.keys.counters, match=runs, count=1000):
            named.add(text(name).split(SEP)[1])
        named.update(text(job_id) for job_id, _ in self.client.hscan_iter(self.keys.decided))
        gone = sorted(named - present)
        forgotten: list[Forgotten] = []
        for batch in _batches(gone, BATCH):
            forgotten += forget_jobs(self.client, self.keys, batch, self.history_seconds)
        if forgotten:
            logger.info(
                "forgot %d job(s) that are gone: %s",
                len(forgotten),
                ", ".join(item.job_id for item in forgotten[:20]),
            )
        return forgotten

    def _kept_aside(self, present: set[str]) -> set[str]:
        """The retired jobs still within their time; drops the entries of those back in the
        schedule or in code (stale) and of those whose time is up (forgotten next)."""
        now_ms = time.time() * 1000
        kept, dropped = set(), []
        for job_id, found in self.client.hgetall(self.keys.retired).items():
            retired = _retired(text(job_id), found)
            if retired.job_id in present:
                dropped.append(retired.job_id)
            elif now_ms - retired.since_ms < self.history_seconds * 1000:
                kept.add(retired.job_id)
            else:
                dropped.append(retired.job_id)
                logger.info("job %s: no live code defined it for its history time", retired.job_id)
        if dropped:
            self.client.hdel(self.keys.retired, *dropped)
        return kept


def _batches(items: Sequence[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _glob(value: str) -> str:
    """``value`` matched literally in a Redis MATCH pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)
