"""The leader lease: one holder at a time, and a fencing epoch that grows with every holder."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from tickonce._exceptions import NotDurableError
from tickonce._storage.clients import evalsha, pipelined_scripts_async, text
from tickonce._storage.counters import counter_names
from tickonce._storage.durability import NONE, Durability
from tickonce._storage.keys import Keys

# Taking the lease and bumping the epoch are one atomic step, so no two holders ever share an
# epoch. A retried request (the client re-sends after a timeout, Redis may run both) finds its
# own token and gets the same epoch back, so the lease is never held by a token nobody has.
# KEYS: lease, epoch, counters. ARGV: token, ttl ms. Returns the epoch, or 0.
_ACQUIRE = counter_names(
    """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return tonumber(redis.call('GET', KEYS[2]))
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('HINCRBY', KEYS[3], '{LEASE_ACQUISITIONS}', 1)
  return redis.call('INCR', KEYS[2])
end
return 0
"""
)

# Only the holder of the token may extend. KEYS: lease. ARGV: token, ttl ms. Returns 1 or 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Only the holder of the token may release. KEYS: lease. ARGV: token. Returns 1 or 0.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """Compare-token acquire, renew and release of the leader lease for one contender.

    :param runner_id: the contender's runner id (``host:pid:nonce``); it is part of the token,
        so readers can tell who leads.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        runner_id: str,
        ttl_ms: int,
        durability: Durability = NONE,
    ) -> None:
        self._client = client
        self._durability = durability
        self._keys = keys
        self._runner_id = runner_id
        self._ttl_ms = ttl_ms
        self._token = ""
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def token(self) -> str:
        return self._token

    async def acquire(self) -> int | None:
        """Take the lease if it is free. Returns the new fencing epoch, or None if held (or,
        with CLAIM_MIN_REPLICAS, if too few replicas acknowledged the new epoch: an epoch a
        failover could take back must not be led with; the lease is given back)."""
        token = f"{self._runner_id}#{uuid.uuid4().hex}"
        keys = [self._keys.lease, self._keys.epoch, self._keys.counters]

        async def queue(pipe: Any) -> None:
            evalsha(pipe, self._acquire, keys, [token, self._ttl_ms])
            self._durability.queue(pipe)  # the same connection, right after the epoch

        answers = await pipelined_scripts_async(self._client, queue, [self._acquire])
        for answer in answers:  # a pipeline's errors come back as answers (Redis trouble)
            if isinstance(answer, Exception):
                raise answer
        epoch = int(answers[0])
        if not epoch:
            return None
        self._token = token
        if self._durability.wanted and not self._durability.held(int(answers[1])):
            await self.release()
            raise NotDurableError(
                f"took the lease with epoch {epoch}, but it was "
                f"{self._durability.shortfall(int(answers[1]))}; not leading with it"
            )
        return epoch

    async def renew(self) -> bool:
        """Extend the lease by a full ttl. False means it is no longer ours."""
        if not self._token:
            return False
        return bool(await self._renew(keys=[self._keys.lease], args=[self._token, self._ttl_ms]))

    async def release(self) -> bool:
        """Give the lease up so a standby can take it at once. False if it was not ours."""
        token, self._token = self._token, ""
        if not token:
            return False
        return bool(await self._release(keys=[self._keys.lease], args=[token]))


@dataclass(frozen=True)
class LeaderView:
    """What Redis says about leadership right now."""

    leader: str | None
    epoch: int | None
    expires_in_ms: int | None


async def read_leader(client: aioredis.Redis, keys: Keys) -> LeaderView:
    """The current holder, the current epoch and the time left on the lease."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.get(keys.lease)
        pipe.pttl(keys.lease)
        pipe.get(keys.epoch)
        token, pttl, epoch = await pipe.execute()
    holder = text(token).rsplit("#", 1)[0] if token else None
    return LeaderView(
        leader=holder,
        epoch=int(epoch) if epoch is not None else None,
        expires_in_ms=int(pttl) if holder and int(pttl) >= 0 else None,
    )
