"""Claim per fire: no claim, no run. One Lua call checks the epoch and takes the fire time."""

from __future__ import annotations

import enum
from collections.abc import Sequence

import redis

from services.core.connection import text
from services.core.keys import Keys
from services.core.ledger import Claim, RunRecord, fire_ms
from services.core.metrics import flat, run_increments


class ClaimResult(enum.IntEnum):
    GRANTED = 1
    TAKEN = 0
    STALE_EPOCH = -1
    FULL = 2  # max_instances runs are going on across the cluster


# A stale epoch means a newer leader exists: refuse before touching anything. The job's running
# slots are the cluster-wide instance count: expired ones are dropped (their runner stopped
# refreshing them), and a full set refuses the fire. A fire time is claimed once (SET NX); a
# granted claim takes a slot and is listed as inflight until its run is recorded.
# KEYS: epoch, claim, inflight, counters, running.
# ARGV: epoch, claim ttl ms, fire id, claim JSON, max instances (0: the fire joins a slot its
#       batch holds already), slot member, slot window ms.
_CLAIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[4], 'claims_refused_stale_epoch', 1)
  return -1
end
local limit = tonumber(ARGV[5])
local now = 0
if limit > 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= limit then
    return 2
  end
end
if not redis.call('SET', KEYS[2], ARGV[4], 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[4], 'claims_refused_taken', 1)
  return 0
end
if limit > 0 then
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[7]), ARGV[6])
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return 1
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

# For a fire time that will not run (skipped, missed): the same checks, then the ledger entry
# directly (and its count), so it too is recorded once. KEYS: epoch, claim, counters, runs.
# ARGV: epoch, claim ttl ms, claim JSON, max entries, n, n counter/increment pairs, then the
# entry's field/value pairs.
_CLAIM_AND_RECORD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('HINCRBY', KEYS[3], 'claims_refused_stale_epoch', 1)
  return -1
end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[3], 'claims_refused_taken', 1)
  return 0
end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[6 + 2 * i], ARGV[7 + 2 * i])
end
redis.call('XADD', KEYS[4], 'MAXLEN', '=', ARGV[4], '*', unpack(ARGV, 6 + 2 * n))
return 1
"""


class FireClaims:
    """Claims fire times for the leader (blocking client: claims are made while firing)."""

    def __init__(self, client: redis.Redis, keys: Keys, max_entries: int) -> None:
        self._keys = keys
        self._max_entries = max_entries
        self._claim = client.register_script(_CLAIM)
        self._claim_and_record = client.register_script(_CLAIM_AND_RECORD)
        self._refresh = client.register_script(_REFRESH)
        self._client = client

    def _claim_key(self, claim: Claim) -> str:
        if claim.manual:
            return self._keys.manual_claim(claim.job_id, claim.manual)
        return self._keys.claim(claim.job_id, fire_ms(claim.scheduled_at))

    def claim(
        self, claim: Claim, ttl_ms: int, *, max_instances: int, slot: str, slot_window_ms: int
    ) -> ClaimResult:
        """Take one fire time for a run: the epoch is current, nobody took the time, and (with
        ``max_instances`` > 0) fewer than that many runs of the job are going on anywhere, in
        which case the run takes the running slot ``slot``."""
        result = self._claim(
            keys=[
                self._keys.epoch,
                self._claim_key(claim),
                self._keys.inflight,
                self._keys.counters,
                self._keys.running(claim.job_id),
            ],
            args=[
                claim.epoch,
                ttl_ms,
                claim.fire_id,
                claim.to_json(),
                max_instances,
                slot,
                slot_window_ms,
            ],
        )
        return ClaimResult(int(result))

    def record_unrun(
        self, records: Sequence[tuple[Claim, RunRecord]], ttl_ms: int
    ) -> list[ClaimResult]:
        """Claim and record fire times that will not run, in one round trip."""
        if not records:
            return []
        pipe = self._client.pipeline(transaction=False)
        for claim, record in records:
            self._claim_and_record(
                keys=[
                    self._keys.epoch,
                    self._claim_key(claim),
                    self._keys.counters,
                    self._keys.runs(claim.job_id),
                ],
                args=[
                    claim.epoch,
                    ttl_ms,
                    claim.to_json(),
                    self._max_entries,
                    *flat(run_increments(record)),
                    *record.flat_fields(),
                ],
                client=pipe,
            )
        return [ClaimResult(int(result)) for result in pipe.execute()]

    def refresh_slots(self, slots: Sequence[tuple[str, str]], window_ms: int) -> set[str]:
        """Extend running slots (job id, member); the members that are gone."""
        if not slots:
            return set()
        lost = self._refresh(
            keys=[self._keys.running(job_id) for job_id, _ in slots],
            args=[window_ms, *(member for _, member in slots)],
        )
        return {text(member) for member in lost}
